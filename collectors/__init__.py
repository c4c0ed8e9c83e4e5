"""Collectors: the ingest side of `meterhouse run`.

Every request goes through the same steps, each its own module:

    http (auth, size, media type)      collectors/http.py, collectors/auth.py
    -> decode + validate               collectors/fast_decode.py (all valid: one pass),
                                       collectors/cloudevents.py (errors), collectors/otlp.py
                                       collectors/validate.py, collectors/genai.py
    -> rate -> rows (column-wise)      collectors/columns.py, meterhouse/rating/fast.py
    -> spool (fsync, then 2xx)         collectors/ingest.py, exporters/spool/
    -> drain -> write                  exporters/spool/spool.py, exporters/clickhouse_writer.py

docs/durability.md explains the spool and what makes the path fast.

The routes are installed by the ``install_ingest`` service hook (collectors/plugin.py).
The wire formats, limits and error answers are documented in docs/events.md.
"""
