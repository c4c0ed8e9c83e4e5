"""Pure processors: a validated event (and its rating) in, table rows out."""
