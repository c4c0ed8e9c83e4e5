"""The Arrow writer: duplicates dropped within a batch, against event_keys, and, for a
batch of uncertain outcome, against the table itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store


def calls(*ids: str) -> list[r.Event]:
    return [
        r.Event(
            id=event_id,
            source="writer.test",
            type=r.MODEL_CALL,
            time=datetime(2026, 11, 2, tzinfo=UTC),
            data=r.ModelCallData(model="gpt-4o", input_tokens=10, output_tokens=2),
            account_id="acme",
        )
        for event_id in ids
    ]


def tables(store: Store, *ids: str) -> dict[str, pa.Table]:
    builder = ColumnBuilder(AccountDirectory(store), Rater.default())
    return dict(builder.build(calls(*ids)).tables)


def stored(store: Store) -> dict[str, int]:
    rows = store.query("SELECT event_id, count() FROM usage_events GROUP BY event_id").rows
    return {str(e): int(n) for e, n in rows}


def test_repeats_in_a_batch_and_across_batches_are_dropped(migrated_store: Store) -> None:
    writer = ClickHouseWriter(migrated_store)
    first = writer.write_tables(tables(migrated_store, "a", "b", "a", "c"))
    assert first.ok and first.written == {"usage_events": 3}
    assert first.duplicates_by_table == {"usage_events": 1}
    again = writer.write_tables(tables(migrated_store, "c", "d"))
    assert again.written == {"usage_events": 1}
    assert stored(migrated_store) == {"a": 1, "b": 1, "c": 1, "d": 1}
    keys = migrated_store.query("SELECT count() FROM event_keys FINAL").scalar()
    assert keys == 4


def test_an_uncertain_batch_is_checked_against_the_table_and_repairs_keys(
    migrated_store: Store,
) -> None:
    """A crash between the parts of one INSERT can leave rows without their keys."""
    writer = ClickHouseWriter(migrated_store)
    assert writer.write_tables(tables(migrated_store, "x", "y")).ok
    migrated_store.command("DELETE FROM event_keys WHERE event_id = 'x'")
    # event_keys alone would let "x" in twice; the uncertain path asks usage_events too.
    retry = writer.write_tables(tables(migrated_store, "x", "y", "z"), certain=False)
    assert retry.ok and retry.written == {"usage_events": 1}
    assert stored(migrated_store) == {"x": 1, "y": 1, "z": 1}
    restored = migrated_store.query(
        "SELECT count() FROM event_keys WHERE event_id = 'x' AND table_name = 'usage_events'"
    ).scalar()
    assert restored == 1


def test_the_row_writer_uses_the_same_keys(migrated_store: Store) -> None:
    writer = ClickHouseWriter(migrated_store)
    assert writer.write_tables(tables(migrated_store, "p")).ok
    row = migrated_store.query("SELECT * FROM usage_events WHERE event_id = 'p'")
    legacy = [("usage_events", dict(zip(row.column_names, row.rows[0], strict=True)))]
    legacy[0][1].pop("ingested_at")
    result = writer.write(legacy)
    assert result.ok and result.duplicates == 1 and not result.written
