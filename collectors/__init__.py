"""Collectors: the ingest side of `meterhouse run`.

Every request goes through the same steps, each its own module:

    http (auth, size, media type)      collectors/http.py, meterhouse/access/key_auth.py
    -> decode + validate               collectors/cloudevents.py, collectors/otlp.py,
                                       collectors/validate.py, collectors/genai.py
    -> rate -> rows (column-wise)      meterhouse/rating/rater.py,
                                       meterhouse/processing/columns.py
    -> spool (fsync, then 2xx)         collectors/ingest.py, exporters/spool/
    -> drain -> claim -> write         exporters/spool/spool.py, exporters/claims.py,
                                       exporters/clickhouse_writer.py

Rating and the row builder are the ones every writer of events uses (the poller, the demo
and reprice too), so they live in meterhouse/.

docs/durability.md explains the spool and what makes the path fast.

The routes are installed by the ``install_ingest`` service hook (collectors/service_hook.py);
collectors/poller.py pulls jobs, runs and logs from a platform that cannot push
(``install_poller``).
The wire formats, limits and error answers are documented in docs/events.md.
"""
