"""Where the demo's generated period ends, kept in the store so the demo can run again.

The generator is pure: the same seed, size and end give the same events, ids included.
The first run records its end (sync_state ``demo.anchor``); a later run with the same
seed and size and no ``--end`` generates up to that same end, so every event it makes is
one the store has already and the writer drops it: running the demo again adds nothing
twice and leaves no run half-played (docker-compose runs it at every `up`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final

from meterhouse.store.base import Store

ANCHOR: Final = "demo.anchor"


def _shape(seed: int, days: int | None, scale: float) -> dict[str, object]:
    return {"seed": seed, "days": days, "scale": scale}


def demo_end(store: Store, *, seed: int, days: int | None, scale: float) -> datetime | None:
    """The end an earlier demo run of the same shape used, or None (first run)."""
    saved = store.query(
        "SELECT argMax(cursor, updated_at) FROM sync_state WHERE name = {n:String}",
        {"n": ANCHOR},
    ).scalar()
    if not saved:
        return None
    try:
        anchor = json.loads(saved)
        if anchor.get("shape") != _shape(seed, days, scale):
            return None
        return datetime.fromisoformat(str(anchor["end"])).astimezone(UTC)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def remember_end(store: Store, end: datetime, *, seed: int, days: int | None, scale: float) -> None:
    cursor = json.dumps({"end": end.isoformat(), "shape": _shape(seed, days, scale)})
    store.insert(
        "sync_state",
        {"name": [ANCHOR], "cursor": [cursor], "last_success_at": [datetime.now(UTC)]},
    )
