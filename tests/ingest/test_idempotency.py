"""An event is (source, id): every re-delivery counts once in every query, at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.ingest.conftest import Service, event

JOB = {"job_id": "j1", "kind": "asset", "team_id": "ml", "project_id": "feat"}


def _month(service: Service) -> list[Any]:
    """What the user-facing queries say, in one tuple per table."""
    q = service.scalar
    return [
        q("SELECT count() FROM usage_events"),
        q("SELECT sum(credits) FROM usage_events"),
        q("SELECT sum(quantity) FROM usage_daily WHERE usage_type = 'input'"),
        q("SELECT sum(events) FROM usage_daily WHERE usage_type = 'input'"),
        q("SELECT count() FROM job_run_events"),
        q("SELECT count() FROM job_runs_current"),
        q("SELECT status FROM job_runs_current"),
        q("SELECT count() FROM job_logs"),
        q("SELECT count() FROM jobs"),
        q("SELECT name FROM jobs FINAL"),
        q("SELECT count() FROM job_definition_events"),
    ]


def _batch(at: datetime, *, name: str, tokens: int, status: str = "succeeded") -> list[Any]:
    when = at.isoformat()
    return [
        event("m1", time=when, input_tokens=tokens),
        event("m2", time=when, input_tokens=tokens),
        event("d1", "com.meterhouse.job.definition", time=when, name=name, **JOB),
        event("r1", "com.meterhouse.job.run", time=when, run_id="run1", status=status, **JOB),
        event(
            "l1",
            "com.meterhouse.job.log",
            time=when,
            run_id="run1",
            level="info",
            message=name,
            **JOB,
        ),
    ]


def test_duplicates_in_one_batch_count_once(service: Service) -> None:
    now = datetime.now(UTC)
    batch = _batch(now, name="first", tokens=100)
    answer = service.post(batch + batch + [event("m1", input_tokens=999)])
    assert answer.status == 204, answer.body
    month = _month(service)
    assert service.scalar("SELECT count() FROM usage_events WHERE kind = 'model'") == 2
    assert month[2:] == [Decimal(200), 2, 1, 1, "succeeded", 1, 1, "first", 1]


def test_redelivery_hours_later_with_other_time_and_body_counts_once(service: Service) -> None:
    first_time = datetime.now(UTC) - timedelta(hours=5)
    assert service.post(_batch(first_time, name="first", tokens=100)).status == 204
    before = _month(service)
    assert before[2:4] == [Decimal(200), 2]
    # The same ids, hours later, with another time, other quantities, another status and
    # another definition: all of it is a duplicate and must change nothing.
    again = _batch(datetime.now(UTC), name="changed", tokens=5000, status="failed")
    assert service.post(again).status == 204
    assert service.post(list(reversed(again))).status == 204
    assert _month(service) == before
    duplicates = "meterhouse_ingest_duplicate_rows_total"
    assert service.metric(duplicates, {"table": "job_logs"}) == 2
    assert service.metric(duplicates, {"table": "job_definition_events"}) == 2
    assert service.metric(duplicates, {"table": "usage_events"}) >= 4


def test_a_new_id_from_the_same_source_is_a_new_event(service: Service) -> None:
    assert service.post([event("n1")]).status == 204
    assert service.post([event("n2")]).status == 204
    assert service.scalar("SELECT count() FROM usage_events") == 2


def test_the_same_id_from_another_source_is_another_event(service: Service) -> None:
    other = service.key(source="platform.other")
    assert service.post([event("s1")]).status == 204
    assert service.post([event("s1", source="platform.other")], token=other).status == 204
    assert service.scalar("SELECT count() FROM usage_events") == 2
    assert service.scalar("SELECT sum(events) FROM usage_daily WHERE usage_type = 'input'") == 2


def test_a_refused_batch_stores_nothing_and_its_retry_stores_everything(service: Service) -> None:
    good = [event("k1"), event("k2")]
    assert service.post([*good, event("k3", output_tokens=-3)]).status == 400
    assert service.scalar("SELECT count() FROM usage_events") == 0
    assert service.post([*good, event("k3")]).status == 204
    assert service.post([*good, event("k3")]).status == 204
    assert service.scalar("SELECT count() FROM usage_events") == 3


def _final_state(event_id: str, at: datetime, status: str = "succeeded") -> dict[str, Any]:
    """The final state of one 60 s run (run-60), as a platform reports it."""
    return event(
        event_id,
        "com.meterhouse.job.run",
        time=at.isoformat(),
        run_id="run-60",
        status=status,
        started_at=(at - timedelta(seconds=60)).isoformat(),
        duration_seconds="60",
        **JOB,
    )


def test_a_runs_final_state_resent_under_new_ids_is_charged_once(service: Service) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    assert service.post([_final_state("done-1", at)]).status == 204
    charged = service.scalar("SELECT sum(credits) FROM usage_events")
    assert charged > 0
    # The platform sends the run's final state again under fresh ids: later, twice in
    # one batch, and once with another final status.
    assert service.post([_final_state("done-2", at + timedelta(seconds=1))]).status == 204
    again = [_final_state("done-3", at), _final_state("done-4", at, status="failed")]
    assert service.post(again).status == 204
    q = service.scalar
    assert q("SELECT count() FROM usage_events") == 1
    assert q("SELECT event_id FROM usage_events") == "run:run-60"
    assert q("SELECT sum(credits) FROM usage_events") == charged
    assert q("SELECT sum(quantity) FROM usage_daily WHERE usage_type = 'compute_seconds'") == 60
    assert q("SELECT sum(credits) FROM usage_daily") == charged
    assert q("SELECT sum(events) FROM usage_daily") == 1
    assert q("SELECT count() FROM job_runs_current") == 1
    # Each state event is still kept as received (job_run_events is keyed by event id).
    assert q("SELECT uniqExact(event_id) FROM job_run_events WHERE status != 'running'") == 4


def test_two_runs_of_one_job_are_two_charges(service: Service) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    other = {**_final_state("done-b", at), "data": {**_final_state("x", at)["data"]}}
    other["data"]["run_id"] = "run-61"
    assert service.post([_final_state("done-a", at), other]).status == 204
    assert service.scalar("SELECT count() FROM usage_events") == 2
    assert service.scalar("SELECT count() FROM job_runs_current") == 2
