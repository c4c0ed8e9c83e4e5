"""Jobs and events: what runs now, what ran, what failed and why.

Job definitions, run state changes and execution logs arrive as CloudEvents and land in
``jobs``, ``job_run_events`` (-> ``job_runs`` -> view ``job_runs_current``) and
``job_logs`` (clickhouse/schema/0004_jobs.sql, 0030_jobs_current.sql). This package reads
them back for people and for Prometheus:

    queries.py   active jobs with their last run, the runs of one job
    events.py    log search: by run, or by level, time, account and text
    stuck.py     runs running far longer than their job usually takes
    metrics.py   a Prometheus collector refreshed from the store
    platform.py  a job platform's REST items turned into events (for collectors/poller.py)
    cursors.py   the poller's position, kept in sync_state
    service.py   the `meterhouse run` hook that installs the metrics

The poller that pulls runs from a platform's REST API takes data in, so it is a collector:
collectors/poller.py, with its own hook (``install_poller``).

docs/jobs.md describes the commands, the metrics and the poller's endpoint shape.
"""
