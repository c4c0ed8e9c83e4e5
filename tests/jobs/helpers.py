"""Builders for job events, and the real write path (rate -> columns -> writer)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from exporters.clickhouse_writer import WriteResult
from meterhouse import records as r
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store
from tests.support.write_path import write_events

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SOURCE = "tests.jobs"


def event(kind: str, at: datetime, data: r.EventData, event_id: str) -> r.Event:
    return r.Event(
        id=event_id, source=SOURCE, type=kind, time=at, data=data, account_id=data.account_id
    )


def definition(
    account: str,
    job: str,
    kind: r.JobKind,
    *,
    at: datetime = T0,
    status: str = "active",
    typical_ms: int = 0,
    deleted: bool = False,
) -> r.Event:
    data = r.JobDefinitionData(
        account_id=account,
        job_id=job,
        kind=kind,
        name=job.removeprefix(f"{account}-"),
        schedule="0 * * * *",
        status=status,  # type: ignore[arg-type]
        typical_duration_ms=typical_ms,
        deleted=deleted,
    )
    return event(r.JOB_DEFINITION, at, data, f"def/{job}/{at.isoformat()}/{status}/{deleted}")


def run_event(
    account: str,
    job: str,
    run: str,
    kind: r.JobKind,
    status: r.RunStatus,
    at: datetime,
    *,
    started_at: datetime | None = None,
    seconds: Decimal | None = None,
    error: tuple[str, str] = ("", ""),
    event_id: str = "",
) -> r.Event:
    data = r.JobRunData(
        account_id=account,
        job_id=job,
        run_id=run,
        kind=kind,
        status=status,
        started_at=started_at,
        duration_seconds=seconds,
        error_type=error[0],
        error_message=error[1],
    )
    return event(r.JOB_RUN, at, data, event_id or f"{run}/{status}")


def run_story(
    account: str,
    job: str,
    run: str,
    kind: r.JobKind,
    *,
    queued_at: datetime,
    seconds: Decimal,
    final: r.RunStatus | None,
    started: bool = True,
    error: tuple[str, str] = ("", ""),
) -> list[r.Event]:
    """queued -> running (2 s later) -> final after ``seconds``, the final event carrying
    its start and duration as platforms send it."""
    started_at = queued_at + timedelta(seconds=2)
    events = [run_event(account, job, run, kind, "queued", queued_at)]
    if not started:
        return events
    events.append(run_event(account, job, run, kind, "running", started_at))
    if final is not None:
        finished = started_at + timedelta(seconds=float(seconds))
        events.append(
            run_event(
                account, job, run, kind, final, finished,
                started_at=started_at, seconds=seconds, error=error,
            )
        )  # fmt: skip
    return events


def log_line(
    account: str,
    job: str,
    run: str,
    kind: r.JobKind,
    at: datetime,
    level: r.LogLevel,
    message: str,
    *,
    error: tuple[str, str] = ("", ""),
    stack_trace: str = "",
    event_id: str = "",
) -> r.Event:
    data = r.JobLogData(
        account_id=account,
        job_id=job,
        run_id=run,
        kind=kind,
        level=level,
        message=message,
        error_type=error[0],
        error_message=error[1],
        stack_trace=stack_trace,
    )
    return event(r.JOB_LOG, at, data, event_id or f"log/{run}/{at.isoformat()}/{message}")


def write(store: Store, events: Sequence[r.Event], rater: Rater | None = None) -> WriteResult:
    """Through the real path: rate, columns, then the idempotent writer."""
    result = write_events(store, events, rater)
    assert result.ok, result.error
    return result
