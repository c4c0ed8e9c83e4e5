"""A job platform's REST items (docs/jobs.md, "Pulling from a platform") as events.

The poller (collectors/poller.py) fetches pages of jobs, runs and logs and hands each item
here. Each item becomes the same ``records.Event`` a pushing platform would send, with an
id derived from what the item says, so fetching the same item twice yields the same event
and the writer stores it once. Pure: no I/O.

A run item says where the run is now; it becomes one event per stage it proves happened
(queued, running, final), so a run first seen running and later seen finished has all its
stages, and the final event carries started_at and duration_seconds for rating.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec

from meterhouse import records as r

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class PlatformJob(msgspec.Struct, kw_only=True, frozen=True):
    account_id: Id
    job_id: Id
    kind: r.JobKind
    name: str
    updated_at: datetime
    team_id: str = ""
    project_id: str = ""
    schedule: str = ""
    status: Literal["active", "paused"] = "active"
    typical_duration_ms: NonNegative = 0
    deleted: bool = False


class PlatformRun(msgspec.Struct, kw_only=True, frozen=True):
    account_id: Id
    job_id: Id
    run_id: Id
    kind: r.JobKind
    status: r.RunStatus
    team_id: str = ""
    project_id: str = ""
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    duration_seconds: Decimal | None = None
    error_type: str = ""
    error_message: str = ""


class PlatformLog(msgspec.Struct, kw_only=True, frozen=True):
    account_id: Id
    job_id: Id
    run_id: Id
    kind: r.JobKind
    level: r.LogLevel
    message: str
    time: datetime
    id: str = ""
    team_id: str = ""
    project_id: str = ""
    error_type: str = ""
    error_message: str = ""
    stack_trace: str = ""


class ItemError(ValueError):
    """An item that cannot become an event; the message says which field and why."""


def utc(value: datetime) -> datetime:
    """Platforms that send times without a zone mean UTC, as every meterhouse time is."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def exact_seconds(started: datetime, finished: datetime) -> Decimal:
    """finished - started in seconds, exactly (a timedelta holds whole microseconds)."""
    delta = finished - started
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros).scaleb(-6)


def _event(source: str, event_id: str, kind: str, at: datetime, data: r.EventData) -> r.Event:
    return r.Event(
        id=event_id, source=source, type=kind, time=utc(at), data=data, account_id=data.account_id
    )


def job_events(item: PlatformJob, source: str) -> list[r.Event]:
    updated = utc(item.updated_at)
    data = r.JobDefinitionData(
        account_id=item.account_id,
        team_id=item.team_id,
        project_id=item.project_id,
        job_id=item.job_id,
        kind=item.kind,
        name=item.name,
        schedule=item.schedule,
        status=item.status,
        typical_duration_ms=item.typical_duration_ms,
        deleted=item.deleted,
    )
    event_id = f"job/{item.account_id}/{item.job_id}/{updated.isoformat()}"
    return [_event(source, event_id, r.JOB_DEFINITION, updated, data)]


def _final_duration(
    item: PlatformRun, started: datetime | None, finished: datetime
) -> Decimal | None:
    if item.duration_seconds is not None:
        return item.duration_seconds
    return exact_seconds(started, finished) if started is not None else None


def run_events(item: PlatformRun, source: str) -> list[r.Event]:
    queued = utc(item.queued_at) if item.queued_at else None
    started = utc(item.started_at) if item.started_at else None
    finished = utc(item.finished_at) if item.finished_at else None
    updated = utc(item.updated_at) if item.updated_at else None
    if item.duration_seconds is not None and not (
        item.duration_seconds.is_finite() and item.duration_seconds >= 0
    ):
        raise ItemError(
            f"duration_seconds must be a number of seconds >= 0, got {item.duration_seconds}"
        )
    end = finished or updated
    if started and end and end < started and item.status in r.FINAL_RUN_STATUSES:
        field = "finished_at" if finished else "updated_at"
        raise ItemError(f"{field} {end.isoformat()} is before started_at {started.isoformat()}")
    base = f"run/{item.account_id}/{item.run_id}"
    owner: dict[str, Any] = {
        "account_id": item.account_id,
        "team_id": item.team_id,
        "project_id": item.project_id,
        "job_id": item.job_id,
        "run_id": item.run_id,
        "kind": item.kind,
    }
    events: list[r.Event] = []
    if queued is not None or item.status == "queued":
        at = queued or updated
        if at is None:
            raise ItemError("a queued run needs queued_at or updated_at")
        events.append(
            _event(source, f"{base}/queued", r.JOB_RUN, at, r.JobRunData(**owner, status="queued"))
        )
    if item.status == "queued":
        return events
    if item.status == "running" or started is not None:
        at = started or updated
        if at is None:
            raise ItemError("a running run needs started_at or updated_at")
        events.append(
            _event(
                source, f"{base}/running", r.JOB_RUN, at, r.JobRunData(**owner, status="running")
            )
        )
    if item.status == "running":
        return events
    if end is None:
        raise ItemError(f"a {item.status} run needs finished_at or updated_at")
    final = r.JobRunData(
        **owner,
        status=item.status,
        started_at=started,
        duration_seconds=_final_duration(item, started, end),
        error_type=item.error_type,
        error_message=item.error_message,
    )
    events.append(_event(source, f"{base}/{item.status}", r.JOB_RUN, end, final))
    return events


def log_events(item: PlatformLog, source: str) -> list[r.Event]:
    at = utc(item.time)
    log_id = (
        item.id
        or hashlib.sha256(
            "\x1f".join(
                (item.account_id, item.run_id, at.isoformat(), item.level, item.message)
            ).encode()
        ).hexdigest()[:32]
    )
    data = r.JobLogData(
        account_id=item.account_id,
        team_id=item.team_id,
        project_id=item.project_id,
        job_id=item.job_id,
        run_id=item.run_id,
        kind=item.kind,
        level=item.level,
        message=item.message,
        error_type=item.error_type,
        error_message=item.error_message,
        stack_trace=item.stack_trace,
    )
    return [_event(source, f"log/{item.account_id}/{log_id}", r.JOB_LOG, at, data)]


@dataclass(frozen=True)
class Stream:
    """One kind of item the platform lists: its path, item type and conversion."""

    name: str
    item_type: type[Any]
    to_events: Callable[[Any, str], list[r.Event]]
    optional: bool = False

    def events(self, raw: bytes, source: str) -> list[r.Event]:
        """Decode one item (JSON) and convert it; ItemError names what is wrong."""
        try:
            item = msgspec.json.decode(raw, type=self.item_type)
        except msgspec.ValidationError as exc:
            raise ItemError(str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ItemError(f"not JSON: {exc}") from None
        events: list[r.Event] = self.to_events(item, source)
        return events


# Definitions first, so a run's job is known before its runs; logs last (optional: a
# platform without GET /logs answers 404 and the poller skips the stream).
STREAMS: Final = (
    Stream("jobs", PlatformJob, job_events),
    Stream("runs", PlatformRun, run_events),
    Stream("logs", PlatformLog, log_events, optional=True),
)
