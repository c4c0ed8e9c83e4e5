"""The platform poller against a real HTTP server on 127.0.0.1 that fails and recovers."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from collectors.poller import Backoff, Poller
from meterhouse.errors import ConfigError
from meterhouse.jobs.platform import STREAMS, ItemError
from meterhouse.rating import PriceBook
from meterhouse.records import JobRunData
from meterhouse.store.base import Store
from tests.jobs.fake_platform import T0, FakePlatform, fill, iso, job_item, run_item, serving
from tests.support.write_path import shipped_rater

FAST = Backoff(attempts=4, base_seconds=0.01, max_seconds=0.05)


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with serving(FakePlatform()) as served:
        yield served


def make_poller(store: Store, platform: FakePlatform, **options: Any) -> Poller:
    options.setdefault("backoff", FAST)
    return Poller(store, platform.url, page_size=4, rater=shipped_rater(), **options)


def counts(store: Store) -> dict[str, int]:
    sql = {
        "jobs": "SELECT count() FROM jobs_current",
        "runs": "SELECT count() FROM job_runs_current",
        "distinct_runs": "SELECT uniqExact(run_id) FROM job_runs_current",
        "run_events": "SELECT count() FROM job_run_events",
        "logs": "SELECT count() FROM job_logs",
        "priced_runs": "SELECT count() FROM usage_events WHERE kind = 'job'",
    }
    return {name: int(store.query(q).scalar()) for name, q in sql.items()}


def statuses(store: Store) -> dict[str, str]:
    rows = store.query("SELECT run_id, status FROM job_runs_current").rows
    return {str(run): str(status) for run, status in rows}


def test_poller_rides_out_failures_resumes_from_its_cursor_and_counts_nothing_twice(
    migrated_store: Store, platform: FakePlatform
) -> None:
    fill(platform)
    poller = make_poller(migrated_store, platform)
    # jobs: three failures retried away, then pages 1, 2 and the empty page 3;
    # runs: page 1, then page 2 fails on every one of the 4 attempts.
    platform.fail_next("500", "429", "drop", "ok", "ok", "ok", "ok", "503", "500", "drop", "500")
    first = poller.poll_once()
    by_stream = {s.stream: s for s in first.streams}
    assert not first.ok
    assert by_stream["jobs"].error == "" and by_stream["jobs"].items == 5
    assert "failed 4 times" in by_stream["runs"].error and by_stream["runs"].cursor == "9"
    assert by_stream["logs"].error == "" and by_stream["logs"].items == 1
    assert counts(migrated_store)["jobs"] == 5 and counts(migrated_store)["runs"] == 4

    # The platform recovers: the next poll asks from the saved cursor, not from the start.
    asked_before = len(platform.cursors_asked("runs"))
    second = poller.poll_once()
    assert second.ok, second.rows()
    assert platform.cursors_asked("runs")[asked_before] == "9"
    after = counts(migrated_store)
    assert after["runs"] == after["distinct_runs"] == 10
    running = {f"run-{n}" for n in range(10) if n % 3 == 0}
    assert {r for r, s in statuses(migrated_store).items() if s == "running"} == running

    # Two running runs finish: the platform lists them again, at the end.
    for n in (0, 3):
        platform.put("runs", run_item(n, "succeeded", seconds=45), "run_id")
    assert poller.poll_once().ok
    assert statuses(migrated_store)["run-0"] == "succeeded"
    final = counts(migrated_store)
    assert final["runs"] == final["distinct_runs"] == 10
    # queued + running + final (+ the final's own start row) per finished run; no copies.
    finished = 10 - len(running) + 2
    assert final["run_events"] == 10 * 2 + finished * 2
    assert final["priced_runs"] == finished

    # A crash between writing a page and saving its cursor: the pages come again and the
    # writer drops every event already stored.
    poller.cursors.save(poller.cursor_name(poller.streams[1]), "0")
    replay = poller.poll_once()
    runs = {s.stream: s for s in replay.streams}["runs"]
    assert replay.ok and runs.items == 10 and runs.rows_written == 0 and runs.duplicates > 0
    assert counts(migrated_store) == final


def test_final_runs_carry_their_duration_for_rating(
    migrated_store: Store, platform: FakePlatform
) -> None:
    platform.put("jobs", job_item(1), "job_id")
    platform.put("runs", run_item(1, "succeeded", seconds=45), "run_id")  # duration computed
    given = run_item(6, "failed", seconds=10) | {"duration_seconds": "9.125"}  # as sent
    platform.put("runs", given, "run_id")
    assert make_poller(migrated_store, platform).poll_once().ok

    priced = dict(
        migrated_store.query(
            "SELECT run_id, lines.quantity[1] FROM usage_events WHERE kind = 'job'"
        ).rows
    )
    assert priced == {"run-1": Decimal(45), "run-6": Decimal("9.125")}
    rate = PriceBook.load().job_rate("asset")
    assert rate is not None
    credits = migrated_store.query(
        "SELECT credits FROM usage_events WHERE run_id = 'run-1'"
    ).scalar()
    assert credits == 45 * rate


def test_bad_items_are_rejected_one_by_one_and_the_stream_moves_on(
    migrated_store: Store, platform: FakePlatform
) -> None:
    platform.put("runs", run_item(1, "succeeded"), "run_id")
    platform.put("runs", run_item(2, "succeeded") | {"kind": "cron"}, "run_id")
    backwards = run_item(3, "succeeded") | {"finished_at": iso(T0 - timedelta(days=1))}
    platform.put("runs", backwards, "run_id")
    no_id = run_item(4, "running")
    no_id.pop("run_id")
    platform.put("runs", no_id | {"run_id": ""}, "run_id")
    platform.put("runs", run_item(5, "running"), "run_id")
    platform.offered.discard("logs")

    result = make_poller(migrated_store, platform).poll_once()
    runs = {s.stream: s for s in result.streams}["runs"]
    assert result.ok and runs.items == 5 and runs.rejected == 3 and runs.cursor == "5"
    assert {s.stream: s.skipped for s in result.streams}["logs"].startswith("not offered")
    assert set(statuses(migrated_store)) == {"run-1", "run-5"}


def test_refusals_are_not_retried_and_tokens_are_sent(
    migrated_store: Store, platform: FakePlatform
) -> None:
    fill(platform, runs=2)
    platform.token = "s3cret"
    refused = make_poller(migrated_store, platform).poll_once()
    jobs = {s.stream: s for s in refused.streams}["jobs"]
    assert not refused.ok and "answered 401" in jobs.error and "bad token" in jobs.error
    assert len(platform.cursors_asked("jobs")) == 1  # no retry of a refusal

    accepted = make_poller(migrated_store, platform, token="s3cret").poll_once()
    assert accepted.ok and counts(migrated_store)["runs"] == 2


def test_stop_interrupts_a_poll_waiting_to_retry(
    migrated_store: Store, platform: FakePlatform
) -> None:
    platform.fail_next(*["500"] * 20)
    poller = make_poller(
        migrated_store, platform, backoff=Backoff(attempts=5, base_seconds=30, max_seconds=30)
    )
    threading.Timer(0.3, poller.stop).start()
    started = time.monotonic()
    result = poller.poll_once()
    assert time.monotonic() - started < 5
    assert not result.ok and "stopped while waiting to retry" in result.streams[0].error


def test_backoff_is_exponential_jittered_and_bounded() -> None:
    backoff = Backoff(attempts=8, base_seconds=0.5, max_seconds=8)
    rng = random.Random(3)
    for retry in range(8):
        waits = [backoff.delay(retry, rng) for _ in range(200)]
        ceiling = min(8, 0.5 * 2**retry)
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8 and min(waits) < ceiling * 0.2  # spread, not fixed
    assert backoff.delay(0, rng, retry_after=3) >= 3  # Retry-After honoured ...
    assert backoff.delay(0, rng, retry_after=3600) <= 8  # ... up to the cap


def test_configuration_and_answer_shape_errors_are_clear(
    migrated_store: Store, platform: FakePlatform
) -> None:
    with pytest.raises(ConfigError, match="MH_POLLER_URL must be an http"):
        Poller(migrated_store, "ftp://platform.example")
    poller = Poller(migrated_store, platform.url.replace("/api", "/nowhere"), backoff=FAST)
    result = poller.poll_once()
    assert "answered 404" in result.streams[0].error


def test_items_become_the_events_a_pushing_platform_would_send() -> None:
    runs = STREAMS[1]
    naive = {
        "account_id": "acme", "job_id": "j", "run_id": "r", "kind": "webhook",
        "status": "timed_out", "started_at": "2026-11-20T08:00:00",
        "updated_at": "2026-11-20T09:00:02.5+01:00",
    }  # fmt: skip
    events = runs.events(json.dumps(naive).encode(), "poller:x")
    assert [e.id for e in events] == ["run/acme/r/running", "run/acme/r/timed_out"]
    final = events[-1]
    # No finished_at: updated_at is the end; a time without zone is UTC.
    assert final.time == datetime(2026, 11, 20, 8, 0, 2, 500000, tzinfo=UTC)
    data = final.data
    assert isinstance(data, JobRunData)
    assert data.started_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert data.duration_seconds == Decimal("2.5")

    queued = runs.events(b'{"account_id": "a", "job_id": "j", "run_id": "r", "kind": "asset", '
                         b'"status": "queued", "updated_at": "2026-11-20T08:00:00Z"}',
                         "poller:x")  # fmt: skip
    assert [e.data.status for e in queued] == ["queued"]  # type: ignore[union-attr]
    for bad, problem in [
        (b'{"account_id": "a"}', "missing required field"),
        (b'{"account_id": "a", "job_id": "j", "run_id": "r", "kind": "asset", '
         b'"status": "failed", "duration_seconds": "-1", "updated_at": "2026-11-20T08:00:00Z"}',
         "duration_seconds must be"),
        (b'{"account_id": "a", "job_id": "j", "run_id": "r", "kind": "asset", "status": "done"}',
         "Invalid enum value 'done'"),
        (b"[1, 2]", "Expected `object`"),
        (json.dumps(naive | {"finished_at": "2026-11-20T07:59:59Z"}).encode(),
         r"finished_at 2026-11-20T07:59:59\+00:00 is before started_at"),
    ]:  # fmt: skip
        with pytest.raises(ItemError, match=problem):
            runs.events(bad, "poller:x")


def test_a_run_whose_final_state_changes_is_charged_once(
    migrated_store: Store, platform: FakePlatform
) -> None:
    """The platform corrects a finished run (failed, then timed_out): the poller sends a
    second final state under a new id; job_runs_current shows the correction, and the
    run stays charged once, as first reported."""
    platform.put("runs", run_item(1, "failed", seconds=40), "run_id")
    poller = make_poller(migrated_store, platform)
    assert poller.poll_once().ok
    charged = migrated_store.query("SELECT sum(credits) FROM usage_events").scalar()
    platform.put("runs", run_item(1, "timed_out", seconds=40), "run_id")
    assert poller.poll_once().ok
    assert statuses(migrated_store) == {"run-1": "timed_out"}
    assert counts(migrated_store)["priced_runs"] == 1
    assert migrated_store.query("SELECT sum(credits) FROM usage_events").scalar() == charged
    assert migrated_store.query("SELECT event_id FROM usage_events").scalar() == "run:run-1"
