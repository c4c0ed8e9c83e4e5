"""Billing state per account, as people read it: plan on both sides, period, money owed."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from billing_sync.views import ACTIVE_STATUSES, load_view
from meterhouse.store.base import Store


def billing_summary(store: Store) -> list[dict[str, Any]]:
    """One row per account: meterhouse plan, Stripe plan and status, period, owed, issues."""
    view = load_view(store)
    open_issues: Counter[str] = Counter(
        str(row[0])
        for row in store.query(
            "SELECT account_id FROM reconciliation_issues FINAL "
            "WHERE status = 'open' AND account_id != ''"
        ).rows
    )
    rows: list[dict[str, Any]] = []
    for account in sorted(view.accounts.values(), key=lambda a: a.account_id):
        customer = view.customer_of(account)
        subs = view.subscriptions_of(customer.customer_id) if customer else []
        active = [s for s in subs if s.status in ACTIVE_STATUSES]
        sub = active[0] if active else (subs[0] if subs else None)
        period = sub.period if sub else None
        key = sub.allowance_key() if sub else None
        granted = view.allowance_grants.get(account.account_id, {}).get(key or "", None)
        owed = sum(
            i.amount_remaining
            for i in view.invoices
            if customer and i.customer_id == customer.customer_id and i.status == "open"
        )
        rows.append(
            {
                "account": account.account_id,
                "plan": account.plan,
                "stripe_customer": customer.customer_id if customer else "",
                "stripe_plan": sub.plan if sub else "",
                "subscription": f"{sub.subscription_id} {sub.status}" if sub else "",
                "period_end": period[1].date().isoformat() if period else "",
                "open_invoices_usd": (Decimal(owed) / 100).quantize(Decimal("0.01")),
                "allowance_granted": granted if granted is not None else "",
                "open_issues": open_issues.get(account.account_id, 0),
            }
        )
    return rows
