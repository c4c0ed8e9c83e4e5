"""Billing state per account, as people read it: plan on both sides, period, money owed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing_sync.views import ACTIVE_STATUSES, load_view
from meterhouse.store.base import Store


def _local_date(moment: datetime, time_zone: str) -> str:
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).date().isoformat()


def billing_summary(store: Store) -> list[dict[str, Any]]:
    """One row per account (meterhouse plan, Stripe plan and status, period end in the
    account's time zone, owed, allowance granted this period, open issues), then one per
    Stripe customer that no account is linked to."""
    view = load_view(store)
    open_issues: Counter[str] = Counter(
        str(row[0])
        for row in store.query(
            "SELECT if(account_id != '', account_id, customer_id) FROM reconciliation_issues "
            "FINAL WHERE status = 'open'"
        ).rows
    )
    owed: Counter[str] = Counter()
    for invoice in view.invoices:
        if invoice.status == "open":
            owed[invoice.customer_id] += invoice.amount_remaining
    rows: list[dict[str, Any]] = []
    for account in sorted(view.accounts.values(), key=lambda a: a.account_id):
        customer = view.customer_of(account)
        subs = view.subscriptions_of(customer.customer_id) if customer else []
        active = [s for s in subs if s.status in ACTIVE_STATUSES]
        sub = active[0] if active else (subs[0] if subs else None)
        period = sub.period if sub else None
        grants = view.granted_in(account.account_id, *period) if period else []
        rows.append(
            _row(
                account=account.account_id,
                plan=account.plan,
                stripe_customer=customer.customer_id if customer else "",
                stripe_plan=sub.plan if sub else "",
                subscription=f"{sub.subscription_id} {sub.status}" if sub else "",
                period_end=_local_date(period[1], account.time_zone) if period else "",
                owed=owed[customer.customer_id] if customer else 0,
                granted=sum((g.amount for g in grants), Decimal(0)) if grants else "",
                issues=open_issues[account.account_id],
            )
        )
    for customer in sorted(view.customers.values(), key=lambda c: c.customer_id):
        if customer.deleted or view.account_of(customer.customer_id) is not None:
            continue
        rows.append(
            _row(
                account="(no account)",
                plan="",
                stripe_customer=customer.customer_id,
                stripe_plan=", ".join(
                    s.plan for s in view.subscriptions_of(customer.customer_id) if s.plan
                ),
                subscription="",
                period_end="",
                owed=owed[customer.customer_id],
                granted="",
                issues=open_issues[customer.account_id or customer.customer_id],
            )
        )
    return rows


def _row(
    *,
    account: str,
    plan: str,
    stripe_customer: str,
    stripe_plan: str,
    subscription: str,
    period_end: str,
    owed: int,
    granted: Decimal | str,
    issues: int,
) -> dict[str, Any]:
    return {
        "account": account,
        "plan": plan,
        "stripe_customer": stripe_customer,
        "stripe_plan": stripe_plan,
        "subscription": subscription,
        "period_end": period_end,
        "open_invoices_usd": (Decimal(owed) / 100).quantize(Decimal("0.01")),
        "allowance_granted": granted,
        "open_issues": issues,
    }
