"""Stuck runs: still `running` far longer than their job usually takes.

A job's expected duration is the median of its latest successful runs when there are
enough of them (``StuckPolicy.min_history``), because that is what the job really takes
now; otherwise the ``typical_duration_ms`` its definition declares. A run is stuck when it
has been running for more than ``multiple`` times that, or for more than the absolute
limit ``max_seconds`` whatever the job (0: no absolute limit). A job with neither history
nor a declared duration is judged by the absolute limit alone.

``judge`` is the rule, pure and unit-tested; ``find_stuck_runs`` reads the running runs
and their jobs' history from the store and applies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from meterhouse.settings import Settings
from meterhouse.store.base import Store

MIN_HISTORY: Final = 3


@dataclass(frozen=True)
class StuckPolicy:
    multiple: float = 3.0
    max_seconds: int = 86_400
    history: int = 20
    min_history: int = MIN_HISTORY

    @classmethod
    def from_settings(cls, settings: Settings) -> StuckPolicy:
        return cls(
            multiple=settings.stuck_run_multiple,
            max_seconds=settings.stuck_run_max_seconds,
            history=settings.stuck_run_history,
        )


@dataclass(frozen=True)
class RunningRun:
    account_id: str
    job_id: str
    run_id: str
    kind: str
    started_at: datetime
    typical_ms: int = 0
    median_ms: float | None = None
    history_runs: int = 0


@dataclass(frozen=True)
class StuckRun:
    run: RunningRun
    running_seconds: float
    expected_seconds: float | None
    limit_seconds: float
    reason: str

    def as_row(self) -> dict[str, Any]:
        return {
            "account": self.run.account_id,
            "job": self.run.job_id,
            "run": self.run.run_id,
            "kind": self.run.kind,
            "started_at": self.run.started_at,
            "running_for": human_seconds(self.running_seconds),
            "expected": human_seconds(self.expected_seconds)
            if self.expected_seconds is not None
            else "",
            "limit": human_seconds(self.limit_seconds),
            "reason": self.reason,
        }


def human_seconds(seconds: float) -> str:
    """3725 -> '1h 2m 5s'; 4.25 -> '4.2s'."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:3])


def expected_seconds(run: RunningRun, policy: StuckPolicy) -> tuple[float | None, str]:
    """How long the run's job usually takes, and where that figure comes from."""
    if run.median_ms is not None and run.history_runs >= policy.min_history:
        return run.median_ms / 1000, f"median of its last {run.history_runs} successful runs"
    if run.typical_ms > 0:
        return run.typical_ms / 1000, "declared typical duration"
    return None, ""


def judge(run: RunningRun, now: datetime, policy: StuckPolicy) -> StuckRun | None:
    """The verdict on one running run: a StuckRun saying why, or None when it is fine."""
    running = (now - run.started_at).total_seconds()
    expected, basis = expected_seconds(run, policy)
    limits: list[tuple[float, str]] = []
    if expected is not None and expected > 0:
        limits.append(
            (
                policy.multiple * expected,
                f"{policy.multiple:g}x the {basis} ({human_seconds(expected)})",
            )
        )
    if policy.max_seconds > 0:
        limits.append((float(policy.max_seconds), "the absolute limit"))
    if not limits:
        return None
    limit, why = min(limits)
    if running <= limit:
        return None
    reason = f"running {human_seconds(running)}, more than {human_seconds(limit)}: {why}"
    return StuckRun(run, running, expected, limit, reason)


def judge_all(runs: Iterable[RunningRun], now: datetime, policy: StuckPolicy) -> list[StuckRun]:
    """Stuck runs among ``runs``, the longest running first."""
    verdicts = [v for run in runs if (v := judge(run, now, policy)) is not None]
    return sorted(verdicts, key=lambda v: (-v.running_seconds, v.run.run_id))


_RUNNING = """
WITH running AS
(
    SELECT account_id, job_id, run_id, kind, started_at
    FROM job_runs_current
    WHERE status = 'running' AND started_at IS NOT NULL __ACCOUNT_FILTER__
),
history AS
(
    SELECT account_id, job_id, median(duration_ms) AS median_ms, count() AS runs
    FROM
    (
        SELECT account_id, job_id, duration_ms
        FROM job_runs_current
        WHERE status = 'succeeded' AND duration_ms IS NOT NULL
          AND (account_id, job_id) IN (SELECT account_id, job_id FROM running)
        ORDER BY finished_at DESC
        LIMIT {history:UInt32} BY account_id, job_id
    )
    GROUP BY account_id, job_id
)
SELECT
    r.account_id AS account_id,
    r.job_id AS job_id,
    r.run_id AS run_id,
    r.kind AS kind,
    r.started_at AS started_at,
    coalesce(j.typical_duration_ms, 0) AS typical_ms,
    h.median_ms AS median_ms,
    coalesce(h.runs, 0) AS history_runs
FROM running AS r
LEFT JOIN jobs_current AS j ON j.account_id = r.account_id AND j.job_id = r.job_id
LEFT JOIN history AS h ON h.account_id = r.account_id AND h.job_id = r.job_id
"""


def running_runs(store: Store, policy: StuckPolicy, *, account_id: str = "") -> list[RunningRun]:
    """Every run in `running` now, with its job's declared and observed duration."""
    account_filter = "AND account_id = {account:String}" if account_id else ""
    result = store.query(
        _RUNNING.replace("__ACCOUNT_FILTER__", account_filter),
        {"history": policy.history, "account": account_id},
        settings={"join_use_nulls": 1},
    )
    return [
        RunningRun(
            account_id=row["account_id"],
            job_id=row["job_id"],
            run_id=row["run_id"],
            kind=row["kind"],
            started_at=row["started_at"],
            typical_ms=int(row["typical_ms"]),
            median_ms=float(row["median_ms"]) if row["median_ms"] is not None else None,
            history_runs=int(row["history_runs"]),
        )
        for row in result.dicts()
    ]


def find_stuck_runs(
    store: Store, policy: StuckPolicy, now: datetime, *, account_id: str = ""
) -> list[StuckRun]:
    return judge_all(running_runs(store, policy, account_id=account_id), now, policy)
