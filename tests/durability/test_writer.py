"""The batch writer on every backend: each event once per (account, source, id), claims
that every writer agrees on, and batches that are completed, never doubled, when written
again under their token."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store


def calls(*ids: str, account: str = "acme", source: str = "writer.test") -> list[r.Event]:
    return [
        r.Event(
            id=event_id,
            source=source,
            type=r.MODEL_CALL,
            time=datetime(2026, 11, 2, tzinfo=UTC),
            data=r.ModelCallData(model="gpt-4o", input_tokens=10, output_tokens=2),
            account_id=account,
        )
        for event_id in ids
    ]


def tables(store: Store, *ids: str, account: str = "acme") -> dict[str, pa.Table]:
    builder = ColumnBuilder(AccountDirectory(store), Rater.default())
    return dict(builder.build(calls(*ids, account=account)).tables)


def stored(store: Store, table: str = "usage_events") -> dict[tuple[str, str], int]:
    rows = store.query(f"SELECT account_id, event_id, count() FROM {table} GROUP BY 1, 2").rows
    return {(str(a), str(e)): int(n) for a, e, n in rows}


def daily_events(store: Store) -> int:
    """Events in usage_daily, asserting it equals a recount from usage_events (lines and
    credits): the rollup is exact, not only the table."""
    daily = store.query("SELECT sum(events), sum(credits) FROM usage_daily").rows[0]
    raw = store.query(
        "SELECT sum(length(lines.usage_type)), sum(arraySum(lines.credits)), "
        "uniqExact(account_id, source, event_id) FROM usage_events"
    ).rows[0]
    assert (daily[0] or 0, daily[1] or 0) == (raw[0] or 0, raw[1] or 0)
    return int(raw[2])


def test_repeats_in_a_batch_and_across_batches_are_dropped(migrated_any_store: Store) -> None:
    store = migrated_any_store
    writer = ClickHouseWriter(store)
    first = writer.write_tables(tables(store, "a", "b", "a", "c"), token="t1")
    assert first.ok and first.written == {"usage_events": 3}
    assert first.duplicates_by_table == {"usage_events": 1}
    again = writer.write_tables(tables(store, "c", "d"), token="t2")
    assert again.ok and again.written == {"usage_events": 1}
    assert stored(store) == {("acme", k): 1 for k in "abcd"}
    assert daily_events(store) == 4


def test_accounts_sharing_a_source_keep_their_own_events(migrated_any_store: Store) -> None:
    store = migrated_any_store
    writer = ClickHouseWriter(store)
    assert writer.write_tables(tables(store, "e1", "e2", account="acme")).ok
    other = writer.write_tables(tables(store, "e1", "e2", account="globex"))
    assert other.ok and other.written == {"usage_events": 2} and other.duplicates == 0
    assert stored(store) == {(a, e): 1 for a in ("acme", "globex") for e in ("e1", "e2")}


def test_a_batch_written_again_under_its_token_completes_the_rollup(
    migrated_any_store: Store,
) -> None:
    """kill -9 between the event table's part and the view's part: the replay (same token)
    writes the missing rollup rows and nothing twice."""
    store = migrated_any_store
    writer = ClickHouseWriter(store)
    batch = tables(store, "k1", "k2", "k3")
    assert writer.write_tables(batch, token="spool:1.0-1.99").ok
    store.command("TRUNCATE TABLE usage_daily")  # the view's part never made it
    replay = writer.write_tables(batch, token="spool:1.0-1.99")
    assert replay.ok
    assert stored(store) == {("acme", k): 1 for k in ("k1", "k2", "k3")}
    assert daily_events(store) == 3
    assert writer.write_tables(batch, token="spool:1.0-1.99").ok  # and once more: no change
    assert daily_events(store) == 3


def test_a_batch_that_lost_its_claims_race_writes_nothing(migrated_any_store: Store) -> None:
    """Two writers (two replicas) with the same events: the first claim wins everywhere."""
    store = migrated_any_store
    one, two = ClickHouseWriter(store), ClickHouseWriter(store)
    assert one.write_tables(tables(store, "r1", "r2"), token="replica-1:a").ok
    late = two.write_tables(tables(store, "r2", "r3"), token="replica-2:a")
    assert late.ok and late.written == {"usage_events": 1} and late.duplicates == 1
    # The first writer's replay still owns its keys: it writes nothing new, drops nothing.
    assert one.write_tables(tables(store, "r1", "r2"), token="replica-1:a").ok
    assert stored(store) == {("acme", k): 1 for k in ("r1", "r2", "r3")}
    assert daily_events(store) == 3
