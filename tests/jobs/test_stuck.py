"""The stuck-run detector: the rule alone, then against the store and the demo data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from meterhouse import records as r
from meterhouse.demo.generator import generate
from meterhouse.demo.runner import run_demo
from meterhouse.jobs.stuck import (
    RunningRun,
    StuckPolicy,
    find_stuck_runs,
    human_seconds,
    judge,
    running_runs,
)
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from tests.jobs.helpers import T0, definition, run_story, write
from tests.support.write_path import shipped_rater

POLICY = StuckPolicy(multiple=3.0, max_seconds=86_400, history=20)


def _running(seconds_ago: float, *, typical_ms: int = 0, median_ms: float | None = None,
             history: int = 0) -> tuple[RunningRun, datetime]:  # fmt: skip
    run = RunningRun("acme", "acme-a", "run-1", "asset", T0, typical_ms, median_ms, history)
    return run, T0 + timedelta(seconds=seconds_ago)


def test_declared_typical_duration_times_the_multiple() -> None:
    assert judge(*_running(179, typical_ms=60_000), POLICY) is None
    assert judge(*_running(180, typical_ms=60_000), POLICY) is None  # exactly at the limit
    verdict = judge(*_running(181, typical_ms=60_000), POLICY)
    assert verdict is not None
    assert verdict.limit_seconds == 180 and verdict.expected_seconds == 60
    assert "3x the declared typical duration (1m)" in verdict.reason


def test_observed_median_wins_over_the_declaration_once_there_is_enough_history() -> None:
    # The job declares 60 s but really takes 100 s: 250 s running is fine ...
    assert judge(*_running(250, typical_ms=60_000, median_ms=100_000, history=5), POLICY) is None
    # ... 301 s is not.
    verdict = judge(*_running(301, typical_ms=60_000, median_ms=100_000, history=5), POLICY)
    assert verdict is not None and "median of its last 5 successful runs" in verdict.reason
    # Two runs are too few to trust: the declaration applies.
    assert judge(*_running(250, typical_ms=60_000, median_ms=100_000, history=2), POLICY)


def test_absolute_limit_alone_and_together() -> None:
    day = 86_400
    assert judge(*_running(day - 1), POLICY) is None  # nothing known: only the limit applies
    verdict = judge(*_running(day + 1), POLICY)
    assert verdict is not None and verdict.expected_seconds is None
    assert "the absolute limit" in verdict.reason
    # A slow job's multiple beyond the limit: the limit wins.
    assert judge(*_running(day + 1, typical_ms=12 * 3_600_000), POLICY) is not None
    no_limit = StuckPolicy(multiple=3, max_seconds=0)
    assert judge(*_running(10 * day), no_limit) is None
    assert judge(*_running(31, typical_ms=10_000), no_limit) is not None


@given(
    running=st.floats(min_value=0, max_value=10 * 86_400),
    typical_ms=st.integers(min_value=0, max_value=86_400_000),
    median_ms=st.one_of(st.none(), st.floats(min_value=1, max_value=86_400_000)),
    history=st.integers(min_value=0, max_value=20),
    multiple=st.floats(min_value=1.1, max_value=10),
    max_seconds=st.integers(min_value=0, max_value=7 * 86_400),
)
def test_stuck_exactly_when_past_the_smallest_limit(
    running: float,
    typical_ms: int,
    median_ms: float | None,
    history: int,
    multiple: float,
    max_seconds: int,
) -> None:
    policy = StuckPolicy(multiple=multiple, max_seconds=max_seconds)
    run = RunningRun("a", "j", "r", "asset", T0, typical_ms, median_ms, history)
    now = T0 + timedelta(seconds=running)
    elapsed = (now - T0).total_seconds()
    if median_ms is not None and history >= policy.min_history:
        expected: float | None = median_ms / 1000
    else:
        expected = typical_ms / 1000 if typical_ms else None
    limits = [multiple * expected] if expected else []
    limits += [max_seconds] if max_seconds else []
    verdict = judge(run, now, policy)
    assert (verdict is not None) == bool(limits and elapsed > min(limits))


def test_policy_from_settings_and_durations_for_people() -> None:
    settings = Settings(stuck_run_multiple=2.5, stuck_run_max_seconds=3600, stuck_run_history=7)
    assert StuckPolicy.from_settings(settings) == StuckPolicy(2.5, 3600, 7)
    assert [human_seconds(s) for s in (4.25, 42, 3725, 90_061)] == [
        "4.2s", "42s", "1h 2m 5s", "1d 1h 1m",
    ]  # fmt: skip


def test_detector_reads_running_runs_and_history_from_the_store(migrated_store: Store) -> None:
    now = T0 + timedelta(days=3)
    events = [
        definition("acme", "acme-slow", "asset", typical_ms=60_000),  # really takes ~100 s
        definition("acme", "acme-hook", "webhook", typical_ms=10_000),  # no history
        definition("acme", "acme-free", "scheduler"),  # nothing known
    ]
    for i, seconds in enumerate((90, 100, 130, 95, 110, 100, 5000)):
        final: r.RunStatus = "failed" if seconds == 5000 else "succeeded"  # failures don't count
        events += run_story("acme", "acme-slow", f"slow-{i}", "asset",
                            queued_at=T0 + timedelta(hours=i), seconds=Decimal(seconds),
                            final=final)  # fmt: skip

    def running(job: str, kind: r.JobKind, run: str, seconds_ago: int) -> list[r.Event]:
        queued = now - timedelta(seconds=seconds_ago + 2)  # starts 2 s after queued
        return run_story("acme", job, run, kind, queued_at=queued, seconds=Decimal(1), final=None)

    events += running("acme-slow", "asset", "slow-ok", 250)  # < 3 x median 100 s
    events += running("acme-slow", "asset", "slow-stuck", 400)
    events += running("acme-hook", "webhook", "hook-stuck", 31)  # > 3 x 10 s declared
    events += running("acme-free", "scheduler", "free-ok", 3600)
    events += running("acme-free", "scheduler", "free-stuck", 2 * 86_400)  # absolute limit
    write(migrated_store, events)

    seen = {run.run_id: run for run in running_runs(migrated_store, POLICY)}
    assert set(seen) == {"slow-ok", "slow-stuck", "hook-stuck", "free-ok", "free-stuck"}
    assert seen["slow-ok"].median_ms == 100_000 and seen["slow-ok"].history_runs == 6
    assert seen["hook-stuck"].typical_ms == 10_000 and seen["hook-stuck"].history_runs == 0

    stuck = find_stuck_runs(migrated_store, POLICY, now)
    assert [v.run.run_id for v in stuck] == ["free-stuck", "slow-stuck", "hook-stuck"]
    assert find_stuck_runs(migrated_store, POLICY, now, account_id="globex") == []
    # Only the 3 latest successful runs (130 is older): median of 95, 110, 100 = 100.
    short = StuckPolicy(multiple=3.0, max_seconds=86_400, history=3)
    assert {r.run_id: r.median_ms for r in running_runs(migrated_store, short)}[
        "slow-ok"
    ] == 100_000


def test_the_demo_stuck_run_is_found(migrated_store: Store) -> None:
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    data = generate(end, days=2, seed=7, scale=0.3)
    run_demo(migrated_store, data, shipped_rater(), actor="test", progress=lambda *_: None)

    stuck = find_stuck_runs(migrated_store, StuckPolicy(), end + timedelta(minutes=1))
    asset = [v for v in stuck if v.run.kind == "asset"]
    assert len(asset) == 1 and asset[0].run.account_id == "acme"
    assert asset[0].running_seconds > 6 * 3600
    assert "3x the median of its last" in asset[0].reason
    # The demo's other runs all finished, so a short absolute limit finds nothing else.
    assert len(find_stuck_runs(migrated_store, StuckPolicy(max_seconds=60), end)) == len(stuck)
