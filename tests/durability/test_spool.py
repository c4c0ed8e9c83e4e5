"""The spool with a real store, in this process: drains, restarts, and odd records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import Spool
from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store


def rows(store: Store, *ids: str) -> dict[str, pa.Table]:
    events = [
        r.Event(
            id=event_id,
            source="spool.test",
            type=r.MODEL_CALL,
            time=datetime(2026, 11, 2, tzinfo=UTC),
            data=r.ModelCallData(model="gpt-4o", input_tokens=10, output_tokens=2),
            account_id="acme",
        )
        for event_id in ids
    ]
    builder = ColumnBuilder(AccountDirectory(store), Rater.default())
    return dict(builder.build(events).tables)


def count(store: Store) -> int:
    return int(store.query("SELECT count() FROM usage_events").scalar())


def test_an_empty_record_does_not_stop_the_drain(migrated_store: Store, tmp_path: Path) -> None:
    spool = Spool(
        tmp_path, ClickHouseWriter(migrated_store), CollectorRegistry(), max_bytes=1 << 24
    )
    spool.start()
    try:
        spool.append({}, 0)  # a batch without rows (an empty request)
        spool.append(rows(migrated_store, "a", "b"), 2)
        assert spool.wait_drained(30)
        assert count(migrated_store) == 2
        assert spool.oldest_age_seconds() == 0
    finally:
        spool.stop()


def test_what_was_spooled_before_a_stop_drains_after_the_start(
    migrated_store: Store, tmp_path: Path
) -> None:
    writer = ClickHouseWriter(migrated_store)
    first = Spool(tmp_path, writer, CollectorRegistry(), max_bytes=1 << 24)
    first.append(rows(migrated_store, "x", "y"), 2)
    first.stop(timeout=0)  # never started: nothing drained, the record stays on disk
    assert count(migrated_store) == 0
    second = Spool(tmp_path, writer, CollectorRegistry(), max_bytes=1 << 24)
    assert second.oldest_age_seconds() > 0
    second.start()
    try:
        assert second.wait_drained(30)
        assert count(migrated_store) == 2
    finally:
        second.stop()
