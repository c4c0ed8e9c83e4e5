"""What the sync remembers between passes and restarts: cursors and applied event ids.

``sync_state`` holds one row per name (latest ``updated_at`` wins): the events cursor
(``stripe.events``) and the progress of a full pass (``stripe.full``), each as JSON, plus
when that pass last succeeded and how long it took. ``stripe_webhook_events`` records
every Stripe event id applied, by a webhook delivery or by the scheduled sync, so each
event is applied once whichever path saw it first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from billing_sync.shapes import to_time
from meterhouse.access.tenants import now_utc
from meterhouse.store.base import Store

EVENTS_CURSOR: Final = "stripe.events"
FULL_PASS: Final = "stripe.full"  # noqa: S105 (a state name, not a password)


@dataclass
class SyncState:
    name: str
    cursor: dict[str, Any] = field(default_factory=dict)
    last_success_at: datetime | None = None
    last_duration_ms: int = 0
    updated_at: datetime | None = None


def load_state(store: Store, name: str) -> SyncState:
    row = next(
        store.query(
            "SELECT name, cursor, last_success_at, last_duration_ms, updated_at "
            "FROM sync_state FINAL WHERE name = {n:String}",
            {"n": name},
        ).dicts(),
        None,
    )
    if row is None:
        return SyncState(name)
    try:
        cursor = json.loads(row["cursor"]) if row["cursor"] else {}
    except ValueError:
        cursor = {}  # unreadable cursor: start over rather than fail every pass
    return SyncState(
        name,
        cursor if isinstance(cursor, dict) else {},
        row["last_success_at"],
        int(row["last_duration_ms"]),
        row["updated_at"],
    )


def save_state(store: Store, state: SyncState) -> SyncState:
    """Store ``state`` as the newest row of its name (strictly newer than the last one)."""
    now = now_utc()
    if state.updated_at is not None and now <= state.updated_at:
        now = state.updated_at + timedelta(milliseconds=1)
    state.updated_at = now
    store.insert(
        "sync_state",
        {
            "name": [state.name],
            "cursor": [json.dumps(state.cursor, sort_keys=True)],
            "last_success_at": [state.last_success_at],
            "last_duration_ms": [state.last_duration_ms],
            "updated_at": [now],
        },
    )
    return state


def applied_event_ids(store: Store, event_ids: Sequence[str]) -> set[str]:
    if not event_ids:
        return set()
    result = store.query(
        "SELECT DISTINCT event_id FROM stripe_webhook_events WHERE event_id IN {ids:Array(String)}",
        {"ids": list(event_ids)},
    )
    return {str(row[0]) for row in result.rows}


def record_applied(store: Store, events: Iterable[dict[str, Any]], source: str) -> int:
    events = list(events)
    if not events:
        return 0
    now = now_utc()
    return store.insert(
        "stripe_webhook_events",
        {
            "event_id": [str(e["id"]) for e in events],
            "type": [str(e.get("type") or "") for e in events],
            "created": [to_time(e.get("created")) or now for e in events],
            "received_at": [now] * len(events),
            "source": [source] * len(events),
        },
    )
