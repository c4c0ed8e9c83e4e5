"""POST /api/v1/events: every content type, every event type, owner rules, answers."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import msgspec

from tests.ingest.conftest import SOURCE, Service, ServiceFactory, event


def test_one_event_as_cloudevents_json_is_stored(service: Service) -> None:
    answer = service.post(event("e1"), content_type="application/cloudevents+json")
    assert answer.status == 204, answer.body
    assert answer.body == b""
    row = service.store.query(
        "SELECT source, event_id, account_id, item, provider, kind FROM usage_events"
    ).rows
    assert row == [(SOURCE, "e1", "acme", "gpt-4o", "openai", "model")]


def test_application_json_takes_one_event_or_an_array(service: Service) -> None:
    assert service.post(event("j1"), content_type="application/json").status == 204
    answer = service.post([event("j2"), event("j3")], content_type="application/json")
    assert answer.status == 204
    assert service.scalar("SELECT count() FROM usage_events") == 3


def test_content_type_parameters_are_ignored(service: Service) -> None:
    answer = service.post(
        [event("p1")], content_type="application/cloudevents-batch+json; charset=utf-8"
    )
    assert answer.status == 204


def test_batch_type_needs_an_array_and_single_type_an_object(service: Service) -> None:
    batch = service.post(event("x"), content_type="application/cloudevents-batch+json")
    single = service.post([event("y")], content_type="application/cloudevents+json")
    for answer in (batch, single):
        assert answer.status == 400
        assert answer.headers["content-type"] == "application/problem+json"
    assert "JSON array" in batch.json()["detail"]
    assert "JSON object" in single.json()["detail"]


def test_unknown_media_type_is_415(service: Service) -> None:
    answer = service.post([event("m")], content_type="text/plain")
    assert answer.status == 415
    assert "application/cloudevents+json" in answer.json()["detail"]


def test_every_event_type_lands_in_its_table(service: Service) -> None:
    started = datetime.now(UTC) - timedelta(minutes=10)
    finished = started + timedelta(seconds=42)
    job = {"job_id": "j1", "kind": "scheduler", "team_id": "data", "project_id": "etl"}
    batch = [
        event("d1", "com.meterhouse.job.definition", name="nightly", schedule="0 2 * * *", **job),
        event(
            "r1",
            "com.meterhouse.job.run",
            time=started.isoformat(),
            run_id="run1",
            status="running",
            **job,
        ),
        event(
            "r2",
            "com.meterhouse.job.run",
            time=finished.isoformat(),
            run_id="run1",
            status="failed",
            started_at=started.isoformat(),
            duration_seconds="42.5",
            error_type="KeyError",
            error_message="'x'",
            **job,
        ),
        event(
            "l1",
            "com.meterhouse.job.log",
            run_id="run1",
            level="error",
            message="boom",
            stack_trace="Traceback ...",
            **job,
        ),
        event(
            "a1",
            "com.meterhouse.api.call",
            route="/v1/query",
            method="POST",
            status_code=201,
            duration_ms=12,
            user_id="alice",
        ),
        event("m1", reasoning_tokens=7, cache_write_tokens=30, cache_read_tokens=20),
    ]
    answer = service.post(batch)
    assert answer.status == 204, answer.body
    assert service.scalar("SELECT count() FROM jobs FINAL WHERE job_id = 'j1'") == 1
    assert service.scalar("SELECT name FROM jobs FINAL") == "nightly"
    assert service.scalar("SELECT count() FROM job_definition_events") == 1
    run = next(service.store.query("SELECT * FROM job_runs_current").dicts())
    assert (run["status"], run["duration_ms"], run["error_type"]) == ("failed", 42000, "KeyError")
    assert service.scalar("SELECT message FROM job_logs") == "boom"
    model = next(
        service.store.query("SELECT attributes FROM usage_events WHERE event_id = 'm1'").dicts()
    )
    stored = msgspec.json.decode(model["attributes"])
    assert (stored["cache_read_tokens"], stored["cache_write_tokens"]) == (20, 30)
    assert stored["reasoning_tokens"] == 7


def test_data_account_id_wins_over_subject(service: Service) -> None:
    answer = service.post([event("o1", subject="from-subject", account_id="from-data")])
    assert answer.status == 204
    assert service.scalar("SELECT account_id FROM usage_events") == "from-data"


def test_subject_is_the_account_when_data_has_none(service: Service) -> None:
    assert service.post([event("o2", subject="globex")]).status == 204
    row = service.store.query("SELECT account_id, attributes FROM usage_events").rows[0]
    assert row[0] == "globex"
    assert msgspec.json.decode(row[1])["account_id"] == "globex"


def test_an_account_scoped_key_fills_a_missing_account(service: Service) -> None:
    token = service.key(account="initech")
    assert service.post([event("o3", subject=None)], token=token).status == 204
    assert service.scalar("SELECT account_id FROM usage_events") == "initech"


def test_no_account_anywhere_is_an_error_on_subject(service: Service) -> None:
    answer = service.post([event("o4", subject=None)])
    assert answer.status == 400
    assert answer.json()["errors"] == [
        {
            "index": 0,
            "field": "subject",
            "message": "no account: set subject (or data.account_id) to the account id",
        }
    ]


def test_missing_time_means_now(service: Service) -> None:
    body = event("t1")
    del body["time"]
    before = datetime.now(UTC)
    assert service.post([body]).status == 204
    stored = service.scalar("SELECT event_time FROM usage_events")
    assert before - timedelta(seconds=1) <= stored <= datetime.now(UTC) + timedelta(seconds=1)


def test_time_offsets_are_kept_as_the_same_instant(service: Service) -> None:
    recent = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    local = recent.astimezone(datetime.now().astimezone().tzinfo)
    assert service.post([event("t3", time=local.isoformat())]).status == 204
    stored = service.scalar("SELECT event_time FROM usage_events WHERE event_id = 't3'")
    assert stored == recent


def test_gzip_bodies_are_accepted(service: Service) -> None:
    raw = gzip.compress(msgspec.json.encode([event("g1"), event("g2")]))
    answer = service.post(raw, headers={"content-encoding": "gzip"})
    assert answer.status == 204, answer.body
    assert service.scalar("SELECT count() FROM usage_events") == 2


def test_body_over_the_limit_is_413(service_with: ServiceFactory) -> None:
    small = service_with(ingest_max_body_bytes=2048)
    answer = small.post([event(f"b{i}") for i in range(20)])
    assert answer.status == 413
    assert "MH_INGEST_MAX_BODY_BYTES" in answer.json()["detail"]
    bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
    assert len(bomb) < 2048
    assert small.post(bomb, headers={"content-encoding": "gzip"}).status == 413


def test_too_many_events_is_413(service_with: ServiceFactory) -> None:
    small = service_with(ingest_max_batch_events=3)
    answer = small.post([event(f"n{i}") for i in range(4)])
    assert answer.status == 413
    assert "MH_INGEST_MAX_BATCH_EVENTS" in answer.json()["detail"]


def test_an_empty_batch_is_accepted(service: Service) -> None:
    assert service.post([]).status == 204


def test_errors_name_index_and_field_and_nothing_is_stored(service: Service) -> None:
    batch = [
        event("ok1"),
        event("bad1", input_tokens="12"),
        event("ok2"),
        event("bad2", "com.meterhouse.nope"),
        event("bad3", output_tokens=-1),
        {"specversion": "1.0", "id": "bad4", "source": SOURCE, "type": "com.meterhouse.api.call"},
    ]
    answer = service.post(batch)
    assert answer.status == 400
    body = answer.json()
    assert body["status"] == 400
    assert "all-or-nothing" in body["detail"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "data.input_tokens"),
        (3, "type"),
        (4, "data.output_tokens"),
        (5, "data"),
    ]
    assert "Expected `int`, got `str`" in body["errors"][0]["message"]
    assert service.scalar("SELECT count() FROM usage_events") == 0
    rejected = {
        (s.labels["type"], s.labels["reason"]): s.value
        for metric in service.registry.collect()
        if metric.name == "meterhouse_ingest_events_rejected"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert rejected[("com.meterhouse.model.call", "invalid_field")] == 1
    assert rejected[("unknown", "unknown_type")] == 1
    assert rejected[("com.meterhouse.model.call", "out_of_range")] == 1
    assert rejected[("com.meterhouse.model.call", "batch_rejected")] == 2


def test_metrics_count_accepted_events_batches_and_inserts(service: Service) -> None:
    assert (
        service.post(
            [event("x1"), event("x2"), event("x3", "com.meterhouse.api.call", route="/r")]
        ).status
        == 204
    )
    accepted = "meterhouse_ingest_events_accepted_total"
    assert service.metric(accepted, {"type": "com.meterhouse.model.call"}) == 2
    assert service.metric(accepted, {"type": "com.meterhouse.api.call"}) == 1
    assert service.metric("meterhouse_ingest_batch_events_count", {"endpoint": "cloudevents"}) == 1
    assert service.metric("meterhouse_ingest_batch_events_sum", {"endpoint": "cloudevents"}) == 3
    assert service.metric("meterhouse_ingest_insert_seconds_count") == 1
    assert service.metric("meterhouse_ingest_insert_errors_total") == 0
