"""Batch writer: rows grouped by table, duplicates dropped, one insert per table.

Idempotency lives here, not in background merges: an event is identified by
(source, event_id), and a row whose key is already stored, or appears earlier in the same
batch, is dropped before insert. So every query users run, and every rollup a materialized
view keeps, counts each event once, right after the insert. One writer per store makes
the check-then-insert safe; its lock serializes the threads that share it (the service's
request workers), so a retry racing the original cannot slip between check and insert.

Keys are checked per table, not per event: when an insert fails part-way, the retry
writes exactly the tables that are still missing the event.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from meterhouse.errors import StoreError
from meterhouse.logs import get_logger
from meterhouse.processing.rows import Row
from meterhouse.store.base import Store

log = get_logger(__name__)

KEYED_TABLES: Final = frozenset(
    {"usage_events", "job_run_events", "job_logs", "job_definition_events"}
)
# Inserts in the order a reader expects them: a run's cost never shows before the run.
TABLE_ORDER: Final = (
    "job_definition_events",
    "jobs",
    "job_run_events",
    "job_logs",
    "usage_events",
)
_LOOKUP_CHUNK: Final = 5000


@dataclass
class WriteResult:
    ok: bool
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_by_table: dict[str, int] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0


def _columns(rows: list[Row]) -> dict[str, list[Any]]:
    names = list(rows[0])
    return {name: [row[name] for row in rows] for name in names}


class ClickHouseWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()

    def _stored_keys(self, table: str, rows: list[Row]) -> set[tuple[str, str]]:
        ids = sorted({row["event_id"] for row in rows})
        found: set[tuple[str, str]] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            result = self.store.query(
                f"SELECT source, event_id FROM {table} WHERE event_id IN {{ids:Array(String)}}",
                {"ids": chunk},
            )
            found.update((str(s), str(e)) for s, e in result.rows)
        return found

    def _unique(self, table: str, rows: list[Row]) -> list[Row]:
        stored = self._stored_keys(table, rows)
        kept: list[Row] = []
        for row in rows:
            key = (row["source"], row["event_id"])
            if key in stored:
                continue
            stored.add(key)
            kept.append(row)
        return kept

    def write(self, table_rows: Iterable[tuple[str, Row]]) -> WriteResult:
        """Insert everything; never raises: a failed insert is reported in the result."""
        with self._lock:
            return self._write(table_rows)

    def _write(self, table_rows: Iterable[tuple[str, Row]]) -> WriteResult:
        started = time.perf_counter()
        by_table: dict[str, list[Row]] = defaultdict(list)
        for table, row in table_rows:
            by_table[table].append(row)
        result = WriteResult(ok=True)
        order = [t for t in TABLE_ORDER if t in by_table] + sorted(
            t for t in by_table if t not in TABLE_ORDER
        )
        try:
            for table in order:
                rows = by_table[table]
                if table in KEYED_TABLES:
                    unique = self._unique(table, rows)
                    if len(unique) < len(rows):
                        result.duplicates += len(rows) - len(unique)
                        result.duplicates_by_table[table] = len(rows) - len(unique)
                    rows = unique
                if rows:
                    result.written[table] = self.store.insert(table, _columns(rows))
        except StoreError as exc:
            log.warning("insert failed", error=str(exc), code=exc.code)
            result.ok = False
            result.error = str(exc)
        except (ValueError, TypeError, OverflowError) as exc:
            # A value the column cannot hold (pyarrow's conversion errors subclass these).
            log.error("insert refused a value", error=str(exc), error_type=type(exc).__name__)
            result.ok = False
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        return result
