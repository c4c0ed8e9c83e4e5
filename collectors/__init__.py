"""Collectors: the ingest side of `meterhouse run`.

Every request goes through the same steps, each its own module, so a durable log can
later sit between "rate" and "write" without touching the others:

    http (auth, size, media type)      collectors/http.py, collectors/auth.py
    -> decode                          collectors/cloudevents.py, collectors/otlp.py
    -> validate                        collectors/validate.py, collectors/genai.py
    -> rate -> batch -> write          collectors/ingest.py (Pipeline + ClickHouseWriter)

The routes are installed by the ``install_ingest`` service hook (collectors/plugin.py).
The wire formats, limits and error answers are documented in docs/events.md.
"""
