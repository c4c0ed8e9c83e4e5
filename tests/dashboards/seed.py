"""Rows for the tables the demo leaves empty today (grants, budgets, prices, Stripe).

The dashboards' proof wants rows behind every panel. Where the demo (built by other parts
of meterhouse) does not fill a table yet, a few consistent rows are added here, only if
the table is empty: once the demo fills it, the demo's own rows are what the panels show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from meterhouse.store.base import Store


def _insert_if_empty(store: Store, table: str, rows: Sequence[Mapping[str, Any]]) -> bool:
    if store.query(f"SELECT count() FROM {table}").scalar():
        return False
    names = list(rows[0])
    store.insert(table, {name: [row[name] for row in rows] for name in names})
    return True


def seed_missing(store: Store, accounts: Sequence[str], end: datetime) -> list[str]:
    """Fill the empty tables the dashboards read; returns the tables that were filled."""
    month = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    version = int(end.timestamp() * 1000)
    filled: list[str] = []

    def fill(table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if _insert_if_empty(store, table, rows):
            filled.append(table)

    fill(
        "credit_grants",
        [
            {
                "grant_id": f"grt_seed_{account}_{n}",
                "account_id": account,
                "kind": kind,
                "amount": amount,
                "effective_at": effective,
                "expires_at": expires,
                "idempotency_key": f"seed-{account}-{n}",
                "description": description,
                "source": "demo",
            }
            for account in accounts
            for n, (kind, amount, effective, expires, description) in enumerate(
                [
                    (
                        "plan_allowance",
                        Decimal(5000),
                        month - timedelta(days=30),
                        month,
                        "last month's plan allowance",
                    ),
                    ("plan_allowance", Decimal(5000), month, None, "this month's allowance"),
                    ("top_up", Decimal(2500), end - timedelta(days=3), None, "top-up"),
                ]
            )
        ],
    )
    fill(
        "budgets",
        [
            {
                "account_id": account,
                "scope": "account",
                "scope_id": account,
                "month": month.date(),
                "amount": Decimal(4000),
            }
            for account in accounts
        ],
    )
    fill(
        "model_prices",
        [
            {
                "provider": provider,
                "model_id": model,
                "model_name": model,
                "effective_from": month - timedelta(days=365),
                "effective_to": None,
                "input_mtok": Decimal(inp),
                "output_mtok": Decimal(out),
                "cache_read_mtok": None,
                "cache_write_mtok": None,
                "context_window": 128000,
                "catalog_version": "seed",
            }
            for provider, model, inp, out in [
                ("openai", "gpt-4o", "2.5", "10"),
                ("openai", "gpt-4o-mini", "0.15", "0.6"),
                ("anthropic", "claude-sonnet-4-20250514", "3", "15"),
            ]
        ],
    )
    customers = [(account, f"cus_seed_{account}") for account in accounts]
    fill(
        "stripe_customers",
        [
            {
                "customer_id": customer,
                "email": f"billing@{account}.example",
                "name": account,
                "account_id": account,
                "currency": "usd",
                "created": month - timedelta(days=90),
                "raw": json.dumps({"id": customer}),
                "version": version,
            }
            for account, customer in customers
        ],
    )
    fill(
        "stripe_products",
        [
            {
                "product_id": "prod_seed_pro",
                "name": "meterhouse Pro",
                "active": 1,
                "plan": "pro",
                "credits": Decimal(5000),
                "raw": "{}",
                "version": version,
            }
        ],
    )
    fill(
        "stripe_prices",
        [
            {
                "price_id": "price_seed_pro_monthly",
                "product_id": "prod_seed_pro",
                "active": 1,
                "currency": "usd",
                "unit_amount": 4900,
                "unit_amount_decimal": Decimal(4900),
                "recurring_interval": "month",
                "raw": "{}",
                "version": version,
            }
        ],
    )
    fill(
        "stripe_subscriptions",
        [
            {
                "subscription_id": f"sub_seed_{account}",
                "customer_id": customer,
                "status": "active",
                "created": month - timedelta(days=90),
                "raw": "{}",
                "version": version,
            }
            for account, customer in customers
        ],
    )
    fill(
        "stripe_subscription_items",
        [
            {
                "item_id": f"si_seed_{account}",
                "subscription_id": f"sub_seed_{account}",
                "price_id": "price_seed_pro_monthly",
                "product_id": "prod_seed_pro",
                "quantity": 1,
                "current_period_start": month,
                "current_period_end": month + timedelta(days=30),
                "raw": "{}",
                "version": version,
            }
            for account, _ in customers
        ],
    )
    fill(
        "stripe_invoices",
        [
            {
                "invoice_id": f"in_seed_{account}_{status}",
                "customer_id": customer,
                "subscription_id": f"sub_seed_{account}",
                "status": status,
                "currency": "usd",
                "total": 4900,
                "amount_due": 4900,
                "amount_paid": 4900 if status == "paid" else 0,
                "amount_remaining": 0 if status == "paid" else 4900,
                "due_date": created + timedelta(days=7),
                "period_start": created,
                "period_end": created + timedelta(days=30),
                "created": created,
                "raw": "{}",
                "version": version,
            }
            for account, customer in customers
            for status, created in [
                ("paid", month - timedelta(days=30)),
                ("open", end - timedelta(days=10)),
            ]
        ],
    )
    fill(
        "reconciliation_issues",
        [
            {
                "issue_id": f"plan_mismatch:{accounts[0]}",
                "account_id": accounts[0],
                "customer_id": customers[0][1],
                "kind": "plan_mismatch",
                "meterhouse_value": "pro",
                "stripe_value": "enterprise",
                "suggested_action": "update the account's plan to enterprise",
                "status": "open",
                "first_seen": end - timedelta(days=2),
                "last_seen": end - timedelta(hours=1),
                "version": version,
            }
        ],
    )
    fill(
        "sync_state",
        [
            {
                "name": "stripe.events",
                "cursor": "evt_seed",
                "last_success_at": end - timedelta(minutes=5),
                "last_duration_ms": 1200,
            }
        ],
    )
    fill(
        "notifications",
        [
            {
                "at": end - timedelta(hours=2, minutes=n),
                "account_id": account,
                "alert": "MeterhouseBudget80PercentUsed",
                "severity": "warning",
                "status": "firing",
                "fingerprint": f"fp_seed_{account}",
                "channel_id": "ch_seed",
                "channel_type": "webhook",
                "delivery_id": f"dlv_seed_{account}",
                "attempt": n + 1,
                "outcome": "retrying" if n == 0 else "sent",
                "response_code": 500 if n == 0 else 200,
                "error": "server error" if n == 0 else "",
                "summary": f"{account} has used 85% of its account budget",
            }
            for account in accounts
            for n in (0, 1)
        ],
    )
    return filled
