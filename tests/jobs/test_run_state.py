"""Latest state of every run and job, whatever order and how often the events arrived.

Everything goes through the real write path (rate -> columns -> ClickHouseWriter) into chdb and is
read back from the user-facing views: job_runs_current and jobs_current / jobs FINAL.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from meterhouse import records as r
from meterhouse.jobs import queries
from meterhouse.jobs.errors import JobsError
from meterhouse.rating import PriceBook
from meterhouse.store.base import Store
from tests.jobs.helpers import T0, definition, run_event, run_story, write

SHAPES: tuple[r.RunStatus | None, ...] = (
    None, "running", "succeeded", "failed", "timed_out", "cancelled", "succeeded",
)  # fmt: skip


def _runs(count: int) -> tuple[list[r.Event], dict[str, dict[str, Any]]]:
    """Events of ``count`` runs over two accounts and four kinds, and what each must read."""
    events: list[r.Event] = []
    expected: dict[str, dict[str, Any]] = {}
    for i in range(count):
        account = ("acme", "globex")[i % 2]
        kind = r.JOB_KINDS[i % 4]
        job, run = f"{account}-{kind}", f"run-{i:03d}"
        shape = SHAPES[i % len(SHAPES)]
        queued = T0 + timedelta(minutes=10 * i)
        seconds = Decimal(f"{5 + i}.25")
        started = shape is not None
        final = shape if shape not in (None, "running") else None
        error = ("TimeoutError", f"step {i} took too long") if final == "failed" else ("", "")
        events += run_story(
            account, job, run, kind,
            queued_at=queued, seconds=seconds, final=final, started=started, error=error,
        )  # fmt: skip
        start = queued + timedelta(seconds=2) if started else None
        expected[run] = {
            "status": "queued" if shape is None else shape,
            "job_id": job,
            "started_at": start,
            "finished_at": start + timedelta(seconds=float(seconds)) if final and start else None,
            "duration_ms": int(seconds * 1000) if final else None,
            "error_type": error[0],
        }
    return events, expected


def _definitions() -> tuple[list[r.Event], dict[str, int]]:
    """Three versions of each job (the newest wins) and one job deleted after creation."""
    events: list[r.Event] = []
    newest: dict[str, int] = {}
    for account in ("acme", "globex"):
        for kind in r.JOB_KINDS:
            job = f"{account}-{kind}"
            events += [
                definition(account, job, kind, at=T0, typical_ms=1000),
                definition(account, job, kind, at=T0 + timedelta(hours=1), status="paused"),
                definition(account, job, kind, at=T0 + timedelta(hours=2), typical_ms=3000),
            ]
            newest[job] = 3000
    events += [
        definition("acme", "acme-retired", "asset", at=T0),
        definition("acme", "acme-retired", "asset", at=T0 + timedelta(hours=1), deleted=True),
    ]
    return events, newest


def _deliver(store: Store, events: list[r.Event], rng: random.Random) -> None:
    """Half the events twice, everything shuffled, in batches of random size, so copies
    meet both inside one batch and across batches."""
    deliveries = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(deliveries)
    start = 0
    while start < len(deliveries):
        size = rng.randint(1, 25)
        write(store, deliveries[start : start + size])
        start += size


def _current_runs(store: Store) -> dict[str, dict[str, Any]]:
    result = store.query(
        "SELECT run_id, job_id, status, started_at, finished_at, duration_ms, error_type "
        "FROM job_runs_current"
    )
    rows = list(result.dicts())
    ids = [row["run_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a run appears twice in job_runs_current"
    return {row.pop("run_id"): row for row in rows}


@pytest.mark.parametrize("seed", [11, 47])
def test_shuffled_and_duplicated_events_give_each_run_and_job_its_latest_state(
    migrated_store: Store, seed: int
) -> None:
    run_events, expected = _runs(28)
    definition_events, newest = _definitions()
    _deliver(migrated_store, run_events + definition_events, random.Random(seed))

    assert _current_runs(migrated_store) == expected
    # The writer dropped every copy: one raw row per event (+1 for a final event's start).
    finals = sum(1 for e in run_events if e.data.status in r.FINAL_RUN_STATUSES)  # type: ignore[union-attr]
    stored = migrated_store.query("SELECT count() FROM job_run_events").scalar()
    assert stored == len(run_events) + finals

    jobs = {
        row["job_id"]: row
        for row in migrated_store.query(
            "SELECT job_id, status, typical_duration_ms FROM jobs_current"
        ).dicts()
    }
    assert {j: row["typical_duration_ms"] for j, row in jobs.items()} == newest
    assert {row["status"] for row in jobs.values()} == {"active"}
    final_rows = migrated_store.query(
        "SELECT job_id, count() AS versions FROM jobs FINAL GROUP BY job_id"
    ).dicts()
    assert {row["job_id"]: row["versions"] for row in final_rows} == dict.fromkeys(newest, 1)

    # The user-facing query answers one row per run too.
    listed = queries.job_runs(migrated_store, "acme-asset", limit=100)
    want = sorted(run for run, row in expected.items() if row["job_id"] == "acme-asset")
    assert sorted(row["run"] for row in listed) == want


def test_states_redelivered_under_new_event_ids_still_read_as_one_run(
    migrated_store: Store,
) -> None:
    """A sender that mints a new id for a retry defeats the writer's key check; the run
    aggregates (argMax by rank and time, min and max of times) are idempotent anyway."""
    run_events, expected = _runs(14)
    write(migrated_store, run_events)
    again = [msgspec.structs.replace(e, id=f"again/{e.id}") for e in reversed(run_events)]
    write(migrated_store, again)

    raw = migrated_store.query("SELECT count() FROM job_run_events").scalar()
    assert raw > len(run_events) * 2 - 1  # the copies are stored ...
    assert _current_runs(migrated_store) == expected  # ... and change nothing users see


def test_late_running_and_queued_events_do_not_reopen_a_finished_run(
    migrated_store: Store,
) -> None:
    started = T0 + timedelta(seconds=5)
    finished = started + timedelta(seconds=42)
    final = run_event(
        "acme", "acme-hourly", "run-late", "scheduler", "failed", finished,
        started_at=started, seconds=Decimal(42), error=("KeyError", "'id' missing"),
    )  # fmt: skip
    write(migrated_store, [final])
    write(
        migrated_store,
        [run_event("acme", "acme-hourly", "run-late", "scheduler", "running", started)],
    )
    write(migrated_store, [run_event("acme", "acme-hourly", "run-late", "scheduler", "queued", T0)])

    run = _current_runs(migrated_store)["run-late"]
    assert run["status"] == "failed" and run["error_type"] == "KeyError"
    assert run["started_at"] == started and run["finished_at"] == finished
    assert run["duration_ms"] == 42_000


def test_a_final_event_alone_records_the_start_and_prices_the_run_once(
    migrated_store: Store,
) -> None:
    """Platforms may send only the final state; it carries started_at and
    duration_seconds, which is what rating prices (kind job, usage type compute_seconds)."""
    started = T0 + timedelta(minutes=1)
    seconds = Decimal("125.5")
    final = run_event(
        "acme", "acme-features", "run-priced", "asset", "succeeded",
        started + timedelta(seconds=float(seconds)), started_at=started, seconds=seconds,
    )  # fmt: skip
    write(migrated_store, [final])
    write(migrated_store, [final])  # a re-delivery charges nothing more

    usage = list(
        migrated_store.query(
            "SELECT kind, item, job_id, run_id, lines.usage_type AS types, "
            "lines.quantity AS quantities, credits FROM usage_events"
        ).dicts()
    )
    rate = PriceBook.load().job_rate("asset")
    assert rate is not None
    assert len(usage) == 1
    assert usage[0]["kind"] == "job" and usage[0]["item"] == "asset"
    assert usage[0]["run_id"] == "run-priced" and usage[0]["job_id"] == "acme-features"
    assert usage[0]["types"] == ["compute_seconds"] and usage[0]["quantities"] == [seconds]
    assert usage[0]["credits"] == seconds * rate

    [run] = queries.job_runs(migrated_store, "acme-features")
    assert run["started_at"] == started and run["duration_s"] == seconds
    assert run["credits"] == seconds * rate


def test_active_jobs_show_last_run_running_now_and_recent_failures(
    migrated_store: Store,
) -> None:
    now = T0 + timedelta(hours=30)
    events = [
        definition("acme", "acme-a", "asset", typical_ms=60_000),
        definition("acme", "acme-b", "webhook", status="paused"),
        definition("acme", "acme-c", "notification"),
        definition("globex", "globex-a", "asset"),
    ]
    events += run_story("acme", "acme-a", "a1", "asset", queued_at=T0, seconds=Decimal(30),
                        final="failed", error=("MemoryError", "out of memory"))  # fmt: skip
    events += run_story("acme", "acme-a", "a2", "asset", queued_at=now - timedelta(hours=3),
                        seconds=Decimal(30), final="timed_out",
                        error=("TimeoutError", "exceeded 900s"))  # fmt: skip
    events += run_story("acme", "acme-a", "a3", "asset", queued_at=now - timedelta(hours=2),
                        seconds=Decimal(30), final="succeeded")  # fmt: skip
    events += run_story("acme", "acme-a", "a4", "asset", queued_at=now - timedelta(minutes=5),
                        seconds=Decimal(30), final=None)  # fmt: skip
    events += run_story("globex", "globex-a", "g1", "asset", queued_at=T0, seconds=Decimal(1),
                        final="succeeded")  # fmt: skip
    write(migrated_store, events)

    rows = {row["job"]: row for row in queries.active_jobs(migrated_store, now)}
    assert set(rows) == {"acme-a", "acme-c", "globex-a"}
    a = rows["acme-a"]
    assert (a["last_status"], a["last_run"], a["running"], a["failed_24h"]) == (
        "running", "a4", 1, 1,
    )  # fmt: skip
    assert a["last_error"] == "TimeoutError: exceeded 900s"
    assert a["last_run_at"] == now - timedelta(minutes=5) + timedelta(seconds=2)
    c = rows["acme-c"]
    assert (c["last_status"], c["last_run_at"], c["running"], c["failed_24h"]) == (None, None, 0, 0)
    assert rows["globex-a"]["last_error"] is None  # never failed

    only = queries.active_jobs(migrated_store, now, account_id="acme", kind="asset")
    assert [row["job"] for row in only] == ["acme-a"]
    with_paused = queries.active_jobs(migrated_store, now, include_paused=True)
    assert {row["job"]: row["job_status"] for row in with_paused}["acme-b"] == "paused"


def test_runs_of_a_job_newest_first_filtered_and_checked(migrated_store: Store) -> None:
    events: list[r.Event] = []
    for i, final in enumerate(["succeeded", "failed", "succeeded", "failed", None]):
        events += run_story(
            "acme", "acme-x", f"x{i}", "scheduler",
            queued_at=T0 + timedelta(hours=i), seconds=Decimal(10), final=final,  # type: ignore[arg-type]
        )  # fmt: skip
    write(migrated_store, events)

    assert [row["run"] for row in queries.job_runs(migrated_store, "acme-x", limit=3)] == [
        "x4", "x3", "x2",
    ]  # fmt: skip
    failed = queries.job_runs(migrated_store, "acme-x", status="failed")
    assert [row["run"] for row in failed] == ["x3", "x1"]
    assert queries.job_runs(migrated_store, "acme-x", account_id="globex") == []
    with pytest.raises(JobsError, match="unknown run status 'broken'"):
        queries.job_runs(migrated_store, "acme-x", status="broken")
    with pytest.raises(JobsError, match="limit must be between"):
        queries.job_runs(migrated_store, "acme-x", limit=0)
    with pytest.raises(JobsError, match="unknown job kind"):
        queries.active_jobs(migrated_store, datetime.now(T0.tzinfo), kind="cron")
