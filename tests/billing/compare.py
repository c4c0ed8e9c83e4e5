"""Mirror tables versus the fake's state: every difference, as readable lines."""

from __future__ import annotations

import json
from typing import Any

from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.store.base import Store

Obj = dict[str, Any]


def _mirror(store: Store, table: str, key: str) -> dict[str, tuple[int, Obj]]:
    result = store.query(f"SELECT {key}, deleted, raw FROM {table} FINAL")
    return {row[0]: (int(row[1]), json.loads(row[2])) for row in result.rows}


def _compare(kind: str, expected: dict[str, Obj], mirror: dict[str, tuple[int, Obj]]) -> list[str]:
    problems: list[str] = []
    for object_id, obj in expected.items():
        found = mirror.get(object_id)
        gone = bool(obj.get("deleted"))
        if found is None:
            problems.append(f"{kind} {object_id} missing from the mirror")
        elif found[0] != int(gone):
            problems.append(f"{kind} {object_id}: mirror deleted={found[0]}, Stripe deleted={gone}")
        elif not gone and found[1] != obj:
            keys = sorted(k for k in set(obj) | set(found[1]) if obj.get(k) != found[1].get(k))
            problems.append(f"{kind} {object_id} differs in {keys}")
    for object_id, (deleted, _) in mirror.items():
        if object_id not in expected and not deleted:
            problems.append(f"{kind} {object_id} in the mirror but not in Stripe")
    return problems


def mirror_differences(store: Store, fake: LocalStripe) -> list[str]:
    """Empty when the mirror holds exactly what the fake Stripe holds."""
    with fake.lock:
        objects = {kind: dict(table) for kind, table in fake.objects.items()}
        items = {
            item["id"]: item
            for sub_id, sub_items in fake.items.items()
            for item in sub_items
            if sub_id in objects.get("subscription", {})
        }
        lines = {
            line["id"]: line
            for invoice_id, invoice_lines in fake.lines.items()
            if not objects["invoice"][invoice_id].get("deleted")
            for line in invoice_lines
        }
        txs = {tx["id"]: tx for txs in fake.balance_transactions.values() for tx in txs}
    problems: list[str] = []
    for kind, table, key in (
        ("customer", "stripe_customers", "customer_id"),
        ("product", "stripe_products", "product_id"),
        ("price", "stripe_prices", "price_id"),
        ("subscription", "stripe_subscriptions", "subscription_id"),
        ("invoice", "stripe_invoices", "invoice_id"),
    ):
        problems += _compare(kind, objects.get(kind, {}), _mirror(store, table, key))
    problems += _compare("item", items, _mirror(store, "stripe_subscription_items", "item_id"))
    problems += _compare("line", lines, _mirror(store, "stripe_invoice_lines", "line_id"))
    mirrored_txs = {
        row[0]: (0, json.loads(row[1]))
        for row in store.query(
            "SELECT transaction_id, raw FROM stripe_balance_transactions FINAL"
        ).rows
    }
    problems += _compare("balance transaction", txs, mirrored_txs)
    return problems
