"""Plan allowances: the credits a subscription's period brings, granted once per period.

At (or after) each period start of an active subscription, the linked account receives
``sum(product credits x quantity)`` credits as a ``plan_allowance`` grant, effective at the
period start and expiring at its end. The idempotency key
``allowance:{subscription}:{period start}`` makes every pass, webhook or restart that sees
the same period grant nothing more; a period that already holds a plan allowance grant
under another key is left as it is (and the reconciliation compares the amounts). Missed
periods (the sync was down for a whole period) are not granted afterwards; the
reconciliation only expects the current period's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing_sync.views import GRANTABLE_STATUSES, AllowanceGrant, BillingView, Subscription
from meterhouse.ledger.grants import create_grant
from meterhouse.store.base import Store


@dataclass(frozen=True)
class AllowanceDue:
    account_id: str
    subscription: Subscription
    amount: Decimal
    period_start: datetime
    period_end: datetime
    key: str


def allowances_due(view: BillingView, now: datetime) -> list[AllowanceDue]:
    """Current-period allowances the linked accounts should have, granted or not."""
    due: list[AllowanceDue] = []
    for sub in sorted(view.subscriptions.values(), key=lambda s: s.subscription_id):
        if sub.status not in GRANTABLE_STATUSES:
            continue
        period, key, amount = sub.period, sub.allowance_key(), sub.allowance
        if period is None or key is None or amount <= 0 or period[0] > now:
            continue
        account = view.account_of(sub.customer_id)
        if account is None or account.status == "closed":
            continue
        due.append(AllowanceDue(account.account_id, sub, amount, period[0], period[1], key))
    return due


def grant_allowances(store: Store, view: BillingView, now: datetime, actor: str) -> int:
    """Grant every due allowance not granted yet; return how many were created now.

    A period that already has a plan allowance grant of the account, under any key (one
    granted by hand while the sync was down, say), is not granted again.
    """
    created = 0
    for allowance in allowances_due(view, now):
        start, end = allowance.period_start, allowance.period_end
        if view.granted_in(allowance.account_id, start, end):
            continue
        outcome = create_grant(
            store,
            account_id=allowance.account_id,
            kind="plan_allowance",
            amount=allowance.amount,
            effective_at=start,
            expires_at=end if end > start else None,
            idempotency_key=allowance.key,
            actor=actor,
            description=(
                f"{allowance.subscription.plan or 'plan'} allowance "
                f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
            ),
            source="stripe",
            stripe_ref=f"{allowance.subscription.subscription_id}:{int(start.timestamp())}",
        )
        view.allowance_grants.setdefault(allowance.account_id, []).append(
            AllowanceGrant(allowance.key, outcome.grant["amount"], start)
        )
        created += int(outcome.created)
    return created
