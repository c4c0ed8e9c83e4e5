"""The one upsert path into the mirror, for list pages, synced events and webhooks alike.

Objects become rows (shapes.py) at a version; a subscription's items and an invoice's
lines come with their parent, fetched in full when Stripe's embedded list is cut short
(``has_more``), and children the parent no longer carries are tombstoned. Events carry
their object as it was at ``event.created``, which is the rows' version, so events applied
in any order leave the newest state.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from billing_sync import shapes
from billing_sync.client import PINNED_API_VERSION
from billing_sync.mirror import (
    BALANCE_TRANSACTIONS,
    CUSTOMERS,
    INVOICES,
    ITEMS,
    LINES,
    PRICES,
    PRODUCTS,
    SUBSCRIPTIONS,
    MirrorBatch,
    replace_children,
)
from billing_sync.source import Obj, StripeSource
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)

# Event type prefix -> kind of object it carries. Anything else is recorded and ignored.
_EVENT_KINDS: Final = (
    ("customer.subscription.", "subscription"),
    ("customer.created", "customer"),
    ("customer.updated", "customer"),
    ("customer.deleted", "customer"),
    ("product.", "product"),
    ("price.", "price"),
    ("invoice.", "invoice"),
)
FETCH_WORKERS: Final = 4  # concurrent per-customer requests (Stripe allows 100/s live)
# invoice.upcoming describes an invoice that does not exist yet (it has no id).
_IGNORED_TYPES: Final = frozenset({"invoice.upcoming"})


def event_kind(event_type: str) -> str | None:
    if event_type in _IGNORED_TYPES:
        return None
    for prefix, kind in _EVENT_KINDS:
        if event_type == prefix or (prefix.endswith(".") and event_type.startswith(prefix)):
            return kind
    return None


def event_version(event: Obj) -> int:
    """An event's row version: its ``created`` second in milliseconds."""
    return int(event.get("created") or 0) * 1000


def event_versions(events: Sequence[Obj]) -> list[int]:
    """Versions for events listed oldest first: ``created`` in ms plus the event's rank
    within its second, so of two events of one second the later one wins."""
    versions: list[int] = []
    second, rank = -1, 0
    for event in events:
        created = int(event.get("created") or 0)
        rank = rank + 1 if created == second else 0
        second = created
        versions.append(created * 1000 + min(rank, 999))
    return versions


@dataclass
class ApplyResult:
    objects: dict[str, int] = field(default_factory=dict)  # kind -> objects applied
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    ignored_events: int = 0

    def count(self, kind: str, n: int = 1) -> None:
        self.objects[kind] = self.objects.get(kind, 0) + n

    def merge_rows(self, written: dict[str, int]) -> None:
        for table, n in written.items():
            self.rows[table] = self.rows.get(table, 0) + n


class Applier:
    """Writes Stripe objects into the mirror through ``store``.

    ``source`` fetches what an object does not carry (more than the embedded items or
    lines, a customer's balance transactions); without one (a webhook with no API key
    set), the embedded part is stored and the next full pass completes it.
    """

    def __init__(self, store: Store, source: StripeSource | None) -> None:
        self.store = store
        self.source = source

    # -- objects ---------------------------------------------------------------------------

    def objects(
        self,
        kind: str,
        objs: Sequence[Obj],
        version: int,
        *,
        tombstone_children: bool,
        result: ApplyResult,
    ) -> None:
        """Apply objects of one kind at one version, one INSERT per table."""
        batch = MirrorBatch()
        self._add(batch, [(kind, obj, version) for obj in objs], tombstone_children)
        result.count(kind, len(objs))
        result.merge_rows(batch.flush(self.store))

    def balance_transactions(
        self, customer_ids: Sequence[str], result: ApplyResult, batch: MirrorBatch | None = None
    ) -> None:
        """Fetch and store the balance transactions of these customers.

        Stripe has no account-wide list of them, so it is one list request per customer;
        a few run at once, since each mostly waits for Stripe.
        """
        if self.source is None or not customer_ids:
            return
        source = self.source
        own = batch is None
        target = batch if batch is not None else MirrorBatch()
        workers = min(FETCH_WORKERS, len(customer_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe-fetch") as pool:
            for txs in pool.map(source.balance_transactions, customer_ids):
                for tx in txs or []:
                    version = int(tx.get("created") or 0) * 1000
                    target.add(BALANCE_TRANSACTIONS, shapes.balance_transaction_row(tx, version))
                    result.count("balance_transaction")
        if own:
            result.merge_rows(target.flush(self.store))

    # -- events ----------------------------------------------------------------------------

    def events(self, events: Sequence[Obj], versions: Sequence[int] | None = None) -> ApplyResult:
        """Apply events (oldest first) through the same path as list pages.

        ``versions`` (default: each event's ``created`` in ms) lets the sync order events of
        one second (see ``event_versions``). Of several events about one object, only the
        last is applied: it carries the object's latest state.
        """
        result = ApplyResult()
        changes: dict[tuple[str, str], tuple[str, Obj, int, Obj]] = {}
        balance_changed: set[str] = set()
        for index, event in enumerate(events):
            kind = event_kind(str(event.get("type") or ""))
            data = event.get("data") or {}
            obj = data.get("object")
            if kind is None or not isinstance(obj, dict) or not obj.get("id"):
                result.ignored_events += 1
                continue
            event_type = str(event["type"])
            if event_type.endswith(".deleted") and kind != "subscription":
                obj = {**obj, "deleted": True}  # the object's last state, marked deleted
            version = versions[index] if versions is not None else event_version(event)
            key = (kind, str(obj["id"]))
            changes.pop(key, None)  # re-insert: the dict keeps the order of last changes
            changes[key] = (kind, obj, version, event)
            result.count(kind)
            if kind == "customer" and self._balance_moved(event_type, data, obj):
                balance_changed.add(str(obj["id"]))
        latest = [
            (
                kind,
                obj if obj.get("deleted") else self._in_pinned_version(kind, event, obj),
                version,
            )
            for kind, obj, version, event in changes.values()
        ]
        batch = MirrorBatch()
        self._add(batch, latest, tombstone_children=True)
        self.balance_transactions(sorted(balance_changed), result, batch)
        result.merge_rows(batch.flush(self.store))
        return result

    def _in_pinned_version(self, kind: str, event: Obj, obj: Obj) -> Obj:
        """Events keep the API version of their creation; re-read the object if it differs."""
        version = event.get("api_version")
        if not version or version == PINNED_API_VERSION or self.source is None:
            return obj
        log.info(
            "event rendered at another API version; reading the object again",
            event_id=event.get("id"),
            api_version=version,
        )
        current = self.source.retrieve(kind, str(obj["id"]))
        return current if current is not None else obj

    @staticmethod
    def _balance_moved(event_type: str, data: dict[str, Any], obj: Obj) -> bool:
        if event_type == "customer.updated":
            return "balance" in (data.get("previous_attributes") or {})
        return event_type == "customer.created" and bool(obj.get("balance"))

    # -- rows ------------------------------------------------------------------------------

    def _add(
        self, batch: MirrorBatch, changes: Sequence[tuple[str, Obj, int]], tombstone_children: bool
    ) -> None:
        subscriptions: list[shapes.Snapshot] = []
        invoices: list[shapes.Snapshot] = []
        for kind, obj, version in changes:
            if kind == "customer":
                batch.add(CUSTOMERS, shapes.customer_row(obj, version))
            elif kind == "product":
                batch.add(PRODUCTS, shapes.product_row(obj, version))
            elif kind == "price":
                batch.add(PRICES, shapes.price_row(obj, version))
            elif kind == "subscription":
                subscriptions.append(self._complete_subscription(obj, version))
            elif kind == "invoice":
                invoices.append(self._complete_invoice(obj, version))
            elif kind == "balance_transaction":
                batch.add(BALANCE_TRANSACTIONS, shapes.balance_transaction_row(obj, version))
            else:
                raise ValueError(f"the mirror has no table for Stripe objects of kind {kind!r}")
        for table, parent_table, snapshots in (
            (ITEMS, SUBSCRIPTIONS, subscriptions),
            (LINES, INVOICES, invoices),
        ):
            batch.extend(parent_table, (s.parent for s in snapshots))
            if tombstone_children:
                replace_children(self.store, batch, table, snapshots)
            else:
                for snapshot in snapshots:
                    batch.extend(table, snapshot.children)

    def _complete_subscription(self, obj: Obj, version: int) -> shapes.Snapshot:
        snapshot = shapes.subscription_snapshot(obj, version)
        if not snapshot.children_complete and self.source is not None:
            items = self.source.subscription_items(str(obj["id"]))
            if items is not None:  # None: gone since; keep what the object carried
                snapshot.children = [shapes.item_row(item, obj, version) for item in items]
                snapshot.children_complete = True
        return snapshot

    def _complete_invoice(self, obj: Obj, version: int) -> shapes.Snapshot:
        snapshot = shapes.invoice_snapshot(obj, version)
        invoice_id = str(obj["id"])
        if obj.get("deleted"):
            snapshot.children, snapshot.children_complete = [], True
        elif not snapshot.children_complete and self.source is not None:
            lines = self.source.invoice_lines(invoice_id)
            if lines is not None:  # None: deleted since; keep what the invoice carried
                snapshot.children = [shapes.line_row(line, invoice_id, version) for line in lines]
                snapshot.children_complete = True
        return snapshot
