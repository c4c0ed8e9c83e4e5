"""`meterhouse demo --via-api`: the generated events arrive through the HTTP ingest API."""

from __future__ import annotations

from datetime import UTC, datetime

from meterhouse import records as r
from meterhouse.demo.generator import generate
from meterhouse.demo.via_api import run_demo_via_api
from meterhouse.settings import Settings
from meterhouse.store.base import Store


def _quiet(step: str, done: int, total: int) -> None:
    return None


def test_demo_events_go_through_the_api_once(clean_store: Store) -> None:
    data = generate(datetime.now(UTC), days=3, seed=3, scale=0.1)
    settings = Settings(clickhouse_url="chdb:///nonexistent", ingest_max_age_days=1)
    summary = run_demo_via_api(clean_store, data, settings, actor="test", progress=_quiet)
    model_calls = sum(1 for e in data.events if e.type == r.MODEL_CALL)
    logs = sum(1 for e in data.events if e.type == r.JOB_LOG)
    q = clean_store.query
    assert q("SELECT count() FROM usage_events WHERE kind = 'model'").scalar() == model_calls
    assert summary.rows["job_logs"] == q("SELECT count() FROM job_logs").scalar() == logs
    assert summary.duplicates == 0
    again = run_demo_via_api(clean_store, data, settings, actor="test", progress=_quiet)
    assert again.rows == {}
    assert again.duplicates >= len(data.events)
    assert q("SELECT count() FROM usage_events WHERE kind = 'model'").scalar() == model_calls
    # The demo's key is revoked once it is done.
    revoked = q("SELECT revoked_at IS NOT NULL AS revoked FROM api_keys FINAL").column("revoked")
    assert revoked == [1, 1]
