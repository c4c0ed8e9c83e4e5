"""Validated events in, one Arrow table per target table out: the row side of every
writer of events (accounts.py: time zone and plan per account; columns.py: the rows)."""
