"""Batch writer: rows grouped by table, duplicates dropped, one insert per table.

Idempotency lives here, not in background merges: an event is identified by
(source, event_id), and a row whose key is already stored, or appears earlier in the same
batch, is dropped before insert. So every query users run, and every rollup a materialized
view keeps, counts each event once, right after the insert. One writer per store makes
the check-then-insert safe; its lock serializes the threads that share it (the service's
request workers), so a retry racing the original cannot slip between check and insert.

Keys are checked per table, not per event: when an insert fails part-way, the retry
writes exactly the tables that are still missing the event. The check asks ``event_keys``
(migration 0015), whose primary key answers it; a batch retried after an unknown outcome
(``certain=False``) also asks the table itself (exporters/arrow_io.py says why).

Two inputs: ``write`` takes (table, row dict) pairs, as the poller and the demo make them;
``write_tables`` takes one Arrow table per target table, as the ingest path and its spool
make them, and inserts each in one piece.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from exporters.arrow_io import insert_table, stored_keys
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


@dataclass
class WriteResult:
    ok: bool
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_by_table: dict[str, int] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    code: int = 0  # ClickHouse's error code when the store refused (StoreError.code)


def _columns(rows: list[Row]) -> dict[str, list[Any]]:
    names = list(rows[0])
    return {name: [row[name] for row in rows] for name in names}


class ClickHouseWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()

    def _stored_keys(self, table: str, rows: list[Row]) -> set[tuple[str, str]]:
        keys = pa.table(
            {
                "source": [str(row["source"]) for row in rows],
                "event_id": [str(row["event_id"]) for row in rows],
            }
        )
        return stored_keys(self.store, table, keys, authoritative=False)

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
            result.code = exc.code or 0
        except (ValueError, TypeError, OverflowError) as exc:
            # A value the column cannot hold (pyarrow's conversion errors subclass these).
            log.error("insert refused a value", error=str(exc), error_type=type(exc).__name__)
            result.ok = False
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        return result

    def write_tables(self, tables: Mapping[str, pa.Table], *, certain: bool = True) -> WriteResult:
        """Insert one Arrow table per target table, duplicates dropped; never raises.

        ``certain=False`` for a batch whose earlier attempt may have written part of it
        (a replay after a crash, a retry after an error): its keys are then also checked
        against the tables themselves.
        """
        with self._lock:
            return self._write_tables(tables, certain=certain)

    def _write_tables(self, tables: Mapping[str, pa.Table], *, certain: bool) -> WriteResult:
        started = time.perf_counter()
        result = WriteResult(ok=True)
        order = [t for t in TABLE_ORDER if t in tables] + sorted(
            t for t in tables if t not in TABLE_ORDER
        )
        try:
            for table in order:
                rows = tables[table]
                if table in KEYED_TABLES:
                    unique = self._unique_table(table, rows, certain=certain)
                    if unique.num_rows < rows.num_rows:
                        dropped = rows.num_rows - unique.num_rows
                        result.duplicates += dropped
                        result.duplicates_by_table[table] = dropped
                    rows = unique
                if rows.num_rows:
                    result.written[table] = insert_table(self.store, table, rows)
        except StoreError as exc:
            log.warning("insert failed", error=str(exc), code=exc.code)
            result.ok = False
            result.error = str(exc)
            result.code = exc.code or 0
        except (ValueError, TypeError, OverflowError, pa.ArrowException) as exc:
            log.error("insert refused a value", error=str(exc), error_type=type(exc).__name__)
            result.ok = False
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        return result

    def _unique_table(self, table: str, rows: pa.Table, *, certain: bool) -> pa.Table:
        """The first row of each (source, event_id) that is not stored yet."""
        rows = first_of_each_key(rows)
        stored = stored_keys(self.store, table, rows, authoritative=not certain)
        if not stored:
            return rows
        keys = zip(
            rows.column("source").to_pylist(), rows.column("event_id").to_pylist(), strict=True
        )
        keep = pa.array([key not in stored for key in keys], pa.bool_())
        return rows.filter(keep)


def first_of_each_key(rows: pa.Table) -> pa.Table:
    """``rows`` without later repeats of a (source, event_id), order kept."""
    if rows.num_rows < 2:
        return rows
    numbered = rows.select(["source", "event_id"]).append_column(
        "__row", pa.array(range(rows.num_rows), pa.int64())
    )
    firsts = numbered.group_by(["source", "event_id"], use_threads=False).aggregate(
        [("__row", "min")]
    )
    if firsts.num_rows == rows.num_rows:
        return rows
    return rows.take(np.sort(firsts.column("__row_min").to_numpy()))
