"""Where a sync resumes: one cursor per name in ``sync_state`` (0005_billing.sql).

``sync_state`` is a ReplacingMergeTree on ``updated_at``; the newest row of a name is its
cursor. Versions are kept strictly increasing per name (from the stored one on), so two
saves in the same millisecond, or after the clock went back, still have a winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from meterhouse.store.base import Store

_ONE_MS = timedelta(milliseconds=1)


@dataclass
class CursorStore:
    store: Store

    def __post_init__(self) -> None:
        self._last_version: dict[str, datetime] = {}

    def load(self, name: str) -> str:
        """The saved cursor of ``name``; '' when it never ran (start from the beginning)."""
        result = self.store.query(
            "SELECT argMax(cursor, updated_at) AS cursor, max(updated_at) AS version "
            "FROM sync_state WHERE name = {name:String}",
            {"name": name},
        )
        row = next(result.dicts(), None)
        if row is None:
            return ""
        stored = row["version"]
        if isinstance(stored, datetime):
            # A clock that went back since the last save must not make new saves lose.
            known = self._last_version.get(name)
            self._last_version[name] = max(stored, known) if known else stored
        return str(row["cursor"] or "")

    def save(self, name: str, cursor: str, *, duration_ms: int = 0) -> None:
        now = datetime.now(UTC)
        previous = self._last_version.get(name)
        version = max(now, previous + _ONE_MS) if previous else now
        self._last_version[name] = version
        self.store.insert(
            "sync_state",
            {
                "name": [name],
                "cursor": [cursor],
                "last_success_at": [now],
                "last_duration_ms": [max(0, duration_ms)],
                "updated_at": [version],
            },
        )
