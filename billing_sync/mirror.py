"""Writes to the Stripe mirror tables: batched per table, versioned, with tombstones.

Rows are collected in a ``MirrorBatch`` and inserted one INSERT per table per flush (a
page of a list, a chunk of events), never one per object. Deletions are rows too: the
object's last row again with ``deleted = 1`` at the deleting version, so ``FINAL`` (latest
version wins) shows the deletion and an older, late event cannot undo it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from billing_sync.shapes import Row, Snapshot
from meterhouse.store.base import Store, check_identifier


@dataclass(frozen=True)
class MirrorTable:
    name: str
    key: str
    parent_key: str = ""  # child tables: the column naming the parent object


CUSTOMERS: Final = MirrorTable("stripe_customers", "customer_id")
PRODUCTS: Final = MirrorTable("stripe_products", "product_id")
PRICES: Final = MirrorTable("stripe_prices", "price_id")
SUBSCRIPTIONS: Final = MirrorTable("stripe_subscriptions", "subscription_id")
ITEMS: Final = MirrorTable("stripe_subscription_items", "item_id", "subscription_id")
INVOICES: Final = MirrorTable("stripe_invoices", "invoice_id")
LINES: Final = MirrorTable("stripe_invoice_lines", "line_id", "invoice_id")
BALANCE_TRANSACTIONS: Final = MirrorTable("stripe_balance_transactions", "transaction_id")

# Tables whose objects Stripe can delete or drop from their parent (swept by a full pass).
DELETABLE: Final = (CUSTOMERS, PRODUCTS, PRICES, SUBSCRIPTIONS, ITEMS, INVOICES, LINES)


class MirrorBatch:
    """Rows waiting to be inserted, by table."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Row]] = {}

    def add(self, table: MirrorTable, row: Row) -> None:
        self._rows.setdefault(table.name, []).append(row)

    def extend(self, table: MirrorTable, rows: Iterable[Row]) -> None:
        for row in rows:
            self.add(table, row)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def flush(self, store: Store) -> dict[str, int]:
        """Insert everything collected, one INSERT per table; return rows written per table."""
        written: dict[str, int] = {}
        for name, rows in self._rows.items():
            if not rows:
                continue
            columns = {column: [row[column] for row in rows] for column in rows[0]}
            written[name] = store.insert(name, columns)
        self._rows.clear()
        return written


def live_children(
    store: Store, table: MirrorTable, parent_ids: Sequence[str]
) -> dict[str, dict[str, Row]]:
    """parent id -> child id -> current row, for children not deleted."""
    found: dict[str, dict[str, Row]] = {parent: {} for parent in parent_ids}
    if not parent_ids:
        return found
    result = store.query(
        f"SELECT * FROM {check_identifier(table.name)} FINAL "
        f"WHERE {check_identifier(table.parent_key)} IN {{ids:Array(String)}} AND deleted = 0",
        {"ids": list(parent_ids)},
    )
    for row in result.dicts():
        found.setdefault(row[table.parent_key], {})[row[table.key]] = row
    return found


def replace_children(
    store: Store,
    batch: MirrorBatch,
    table: MirrorTable,
    snapshots: Sequence[Snapshot],
) -> None:
    """Add each snapshot's children, and tombstones for children it no longer carries.

    Snapshots are applied in the order given (oldest first). A child missing from a
    snapshot is tombstoned only when the snapshot is newer than the child's row; if an
    older snapshot arrives late, its tombstone would lose to the newer row anyway.
    """
    complete = [s for s in snapshots if s.children_complete]
    parent_ids = sorted({str(s.parent[table.parent_key]) for s in complete})
    live = live_children(store, table, parent_ids)
    for snapshot in snapshots:
        batch.extend(table, snapshot.children)
        if not snapshot.children_complete:
            continue
        parent = str(snapshot.parent[table.parent_key])
        version = int(snapshot.parent["version"])
        keep = {row[table.key] for row in snapshot.children}
        for child_id, row in live.get(parent, {}).items():
            if child_id not in keep and int(row["version"]) < version:
                batch.add(table, {**row, "deleted": 1, "version": version})
        live[parent] = {row[table.key]: row for row in snapshot.children}


def sweep_unseen(store: Store, table: MirrorTable, snapshot_version: int) -> int:
    """After a complete full pass: tombstone every live row the pass did not write.

    A full pass writes every object Stripe still has at ``snapshot_version``; a live row
    below that version is therefore something Stripe no longer lists (a deleted customer,
    a line removed from a draft). Newer rows (webhooks during the pass) are left alone.
    """
    name = check_identifier(table.name)
    params = {"v": snapshot_version}
    count = int(
        store.query(
            f"SELECT count() FROM {name} FINAL WHERE deleted = 0 AND version < {{v:UInt64}}",
            params,
        ).scalar()
        or 0
    )
    if count:
        store.command(
            f"INSERT INTO {name} SELECT * REPLACE (toUInt8(1) AS deleted, "
            f"toUInt64({{v:UInt64}}) AS version) FROM {name} FINAL "
            "WHERE deleted = 0 AND version < {v:UInt64}",
            params,
        )
    return count
