"""OpenMeter's listings over meter_events: subjects, and the events themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from meterhouse.meters.definition import stable_ulid
from meterhouse.meters.query import Scope, rfc3339
from meterhouse.store.base import Store

MAX_EVENTS: Final = 100  # OpenMeter's limit for one page of listEvents
MAX_SUBJECTS: Final = 10_000


def list_subjects(store: Store, scope: Scope, key: str | None = None) -> list[dict[str, Any]]:
    """OpenMeter ``Subject`` objects: every subject the reader's events name, with the
    first and the latest time one of its events was stored. The id is stable per
    (account, subject); ``metadata`` says which account the subject belongs to."""
    condition, params = scope.sql()
    if key is not None:
        condition += " AND subject = {mh_subject:String}"
        params["mh_subject"] = key
    rows = store.query(
        "SELECT account_id, subject, min(ingested_at), max(ingested_at) FROM meter_events "
        f"WHERE {condition} GROUP BY account_id, subject ORDER BY subject, account_id "
        f"LIMIT {MAX_SUBJECTS}",
        params,
    ).rows
    return [
        {
            "id": stable_ulid(f"subject:{account}\x1f{subject}"),
            "key": subject,
            "displayName": None,
            "metadata": {"meterhouse.account": account},
            "createdAt": rfc3339(_utc(first)),
            "updatedAt": rfc3339(_utc(latest)),
        }
        for account, subject, first, latest in rows
    ]


@dataclass(frozen=True)
class EventFilter:
    start: datetime
    end: datetime | None = None
    ingested_from: datetime | None = None
    ingested_to: datetime | None = None
    event_id: str | None = None
    subject: str | None = None
    limit: int = MAX_EVENTS


def list_events(store: Store, scope: Scope, found: EventFilter) -> list[dict[str, Any]]:
    """OpenMeter ``IngestedEvent`` objects, newest first."""
    condition, params = scope.sql()
    where = [condition, "event_time >= {mh_from:DateTime64(3, 'UTC')}"]
    params["mh_from"] = found.start
    optional = (
        ("event_time <= {mh_to:DateTime64(3, 'UTC')}", "mh_to", found.end),
        ("ingested_at >= {mh_ifrom:DateTime64(3, 'UTC')}", "mh_ifrom", found.ingested_from),
        ("ingested_at <= {mh_ito:DateTime64(3, 'UTC')}", "mh_ito", found.ingested_to),
        ("event_id = {mh_id:String}", "mh_id", found.event_id),
        ("subject = {mh_subject:String}", "mh_subject", found.subject),
    )
    for clause, name, value in optional:
        if value is not None:
            where.append(clause)
            params[name] = value
    rows = store.query(
        "SELECT event_id, source, event_type, subject, event_time, data, ingested_at "
        f"FROM meter_events WHERE {' AND '.join(where)} "
        f"ORDER BY event_time DESC, event_id LIMIT {int(found.limit)}",
        params,
    ).rows
    answer: list[dict[str, Any]] = []
    for event_id, source, event_type, subject, time, data, ingested_at in rows:
        event: dict[str, Any] = {
            "id": event_id,
            "source": source,
            "specversion": "1.0",
            "type": event_type,
            "subject": subject,
            "time": rfc3339(_utc(time)),
        }
        if data:
            event["datacontenttype"] = "application/json"
            event["data"] = json.loads(data)
        stored = rfc3339(_utc(ingested_at))
        answer.append({"event": event, "ingestedAt": stored, "storedAt": stored})
    return answer


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
