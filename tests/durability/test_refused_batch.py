"""A drain batch the store refuses for good after it stored some of its tables: the batch
withdraws its claims on the tables it did not store, is narrowed to single records, the
refused record goes to the dead letters, and every other event is stored exactly once in
every table (none lost to the refused batch's claims, none written twice)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import Spool
from meterhouse import records as r
from meterhouse.errors import StoreError
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import QueryResult, Store

POISON = "poison"
WHEN = datetime(2026, 11, 2, 12, tzinfo=UTC)


class RefusesPoison(Store):
    """The real store, except that it refuses, as ClickHouse refuses a value a column
    cannot hold (error 53), any usage_events insert with the event id ``poison``: a
    fault the test injects at the store's edge."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.url, self.database = store.url, store.database
        self.capabilities = store.capabilities

    def query(self, sql: str, params: Any = None, *, settings: Any = None) -> QueryResult:
        return self.inner.query(sql, params, settings=settings)

    def command(self, sql: str, params: Any = None, *, settings: Any = None) -> None:
        self.inner.command(sql, params, settings=settings)

    def insert(self, table: str, columns: Any, *, settings: Any = None) -> int:
        return self.inner.insert(table, columns, settings=settings)

    def insert_arrow(
        self, table: str, data: pa.Table, *, settings: Mapping[str, Any] | None = None
    ) -> int:
        if table == "usage_events" and pc.any(pc.equal(data.column("event_id"), POISON)).as_py():
            raise StoreError("Type mismatch (test)", code=53, name="TYPE_MISMATCH")
        return self.inner.insert_arrow(table, data, settings=settings)

    def query_arrow(self, sql: str, params: Any = None, *, settings: Any = None) -> pa.Table:
        return self.inner.query_arrow(sql, params, settings=settings)

    def close(self) -> None:
        self.inner.close()


def tables(store: Store, event: r.Event) -> dict[str, pa.Table]:
    return dict(ColumnBuilder(AccountDirectory(store), Rater.default()).build([event]).tables)


def run(event_id: str) -> r.Event:
    return r.Event(
        id=event_id,
        source="refused.test",
        type=r.JOB_RUN,
        time=WHEN,
        data=r.JobRunData(
            job_id="nightly",
            run_id=f"run-{event_id}",
            kind="scheduler",
            status="succeeded",
            started_at=WHEN.replace(hour=11),
            duration_seconds=Decimal("60"),
        ),
        account_id="acme",
    )


def call(event_id: str) -> r.Event:
    return r.Event(
        id=event_id,
        source="refused.test",
        type=r.MODEL_CALL,
        time=WHEN,
        data=r.ModelCallData(model="gpt-4o", input_tokens=10, output_tokens=2),
        account_id="acme",
    )


def test_a_batch_refused_after_storing_some_tables_loses_and_doubles_nothing(
    migrated_store: Store, tmp_path: Path
) -> None:
    store = RefusesPoison(migrated_store)
    spool = Spool(tmp_path, ClickHouseWriter(store), CollectorRegistry(), max_bytes=1 << 26)
    # One drain batch: the run's job_run_events rows are stored, then usage_events (with
    # the poisoned call among the run's charge and a good call) is refused for good.
    for event in (run("a"), call(POISON), call("c")):
        spool.append(tables(migrated_store, event), 1)
    spool.start()
    try:
        assert spool.wait_drained(120)
    finally:
        spool.stop()
    usage = migrated_store.query(
        "SELECT event_id, count() FROM usage_events GROUP BY event_id ORDER BY event_id"
    ).rows
    assert usage == [("c", 1), ("run:run-a", 1)]
    runs = migrated_store.query(
        "SELECT event_id, count() FROM job_run_events GROUP BY event_id ORDER BY event_id"
    ).rows
    assert runs == [("a", 1), ("a#started", 1)]
    assert spool.dead_letters.count() == 1
    daily = migrated_store.query("SELECT sum(credits) FROM usage_daily").scalar()
    raw = migrated_store.query("SELECT sum(credits) FROM usage_events").scalar()
    assert daily == raw
