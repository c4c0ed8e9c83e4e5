"""The demo's ledger: plan allowances, top-ups, an expired promotion, and budgets.

Called after the demo's events are stored, relative to the demo's end time and each
account's time zone, so the statements of this month and the last one read like real
ones: allowances at each month start, a top-up in the middle, the unused part of a
promotional credit leaving the balance at its expiry, and budgets of which one is past
80 % (sized from the usage actually stored, so it holds whatever the prices are).
Everything is keyed: running the demo again credits nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Final

from meterhouse.demo.generator import DemoData, DemoTenant
from meterhouse.ledger import budgets as b
from meterhouse.ledger.grants import create_grant
from meterhouse.ledger.months import MonthSpan, zone_of
from meterhouse.store.base import Store

PLAN_ALLOWANCES: Final = {
    "free": Decimal(1_000),
    "starter": Decimal(4_000),
    "pro": Decimal(10_000),
    "enterprise": Decimal(25_000),
}
TOP_UP_PLANS: Final = ("free", "starter")
TOP_UP: Final = Decimal(2_500)
PROMOTION: Final = Decimal(1_500)
HOT_BUDGET_RATIO: Final = Decimal("0.85")


@dataclass
class LedgerSeed:
    grants_created: int = 0
    budgets: list[str] = field(default_factory=list)


def _grant(
    store: Store,
    seed: LedgerSeed,
    tenant: DemoTenant,
    *,
    kind: str,
    amount: Decimal,
    key: str,
    effective_at: datetime,
    expires_at: datetime | None,
    actor: str,
    description: str,
    priority: int = 10,
) -> None:
    outcome = create_grant(
        store,
        account_id=tenant.account_id,
        kind=kind,
        amount=amount,
        effective_at=effective_at,
        expires_at=expires_at,
        idempotency_key=key,
        priority=priority,
        description=description,
        source="demo",
        actor=actor,
    )
    seed.grants_created += int(outcome.created)


def _grants(store: Store, seed: LedgerSeed, tenant: DemoTenant, data: DemoData, actor: str) -> None:
    zone = zone_of(tenant.time_zone)
    end = data.end
    this = MonthSpan.containing(end, zone)
    allowance = PLAN_ALLOWANCES.get(tenant.plan, PLAN_ALLOWANCES["free"])
    last = MonthSpan.containing(this.start - timedelta(milliseconds=1), zone)
    for span in (last, this):
        _grant(
            store,
            seed,
            tenant,
            kind="plan_allowance",
            amount=allowance,
            key=f"demo:{tenant.account_id}:allowance:{span.label}",
            effective_at=span.start,
            expires_at=span.end,
            actor=actor,
            description=f"{tenant.plan.title()} plan, {span.label}",
        )
    if tenant.plan in TOP_UP_PLANS or tenant.account_id == "acme":
        _grant(
            store,
            seed,
            tenant,
            kind="top_up",
            amount=TOP_UP,
            key=f"demo:{tenant.account_id}:top-up:{this.label}",
            effective_at=max(
                this.start, min(this.start + timedelta(days=2), end - timedelta(hours=1))
            ),
            expires_at=None,
            actor=actor,
            description="Card payment",
        )


def _promotion(
    store: Store, seed: LedgerSeed, tenant: DemoTenant, end: datetime, actor: str
) -> None:
    """A promotional credit that has expired: it burns after the allowance, so most of it
    is left at expiry and shows as an expiry line on the statement."""
    hour = end.replace(minute=0, second=0, microsecond=0)
    _grant(
        store,
        seed,
        tenant,
        kind="promotional",
        amount=PROMOTION,
        key=f"demo:{tenant.account_id}:promotion",
        effective_at=hour - timedelta(days=25),
        expires_at=hour - timedelta(days=4),
        actor=actor,
        description="Conference credit",
        priority=20,
    )


def _budgets(store: Store, seed: LedgerSeed, data: DemoData, actor: str) -> None:
    for tenant in data.tenants:
        amount = PLAN_ALLOWANCES.get(tenant.plan, PLAN_ALLOWANCES["free"])
        b.set_budget(
            store,
            account_id=tenant.account_id,
            scope="account",
            amount=amount,
            month=None,
            actor=actor,
        )
        seed.budgets.append(f"{tenant.account_id}: account {amount} every month")
    first = data.tenants[0]
    span = MonthSpan.containing(data.end, zone_of(first.time_zone))
    used = b.scope_usage(store, first.account_id, span, data.end)
    projects = sorted(
        (p for _, p, _ in first.projects),
        key=lambda p: used.get(("project", p), Decimal(0)),
        reverse=True,
    )
    if not projects:
        return
    project = projects[0]
    spent = used.get(("project", project), Decimal(0))
    # Sized so this month's usage so far is 85 % of it: the demo shows a budget past 80 %.
    amount = (spent / HOT_BUDGET_RATIO).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    b.set_budget(
        store,
        account_id=first.account_id,
        scope="project",
        scope_id=project,
        amount=amount if amount > 0 else Decimal(500),
        month=span.month,
        actor=actor,
    )
    seed.budgets.append(f"{first.account_id}: project {project} {amount} in {span.label}")


def seed_ledger(store: Store, data: DemoData, actor: str) -> LedgerSeed:
    """Grants and budgets for the demo's accounts; safe to run again."""
    seed = LedgerSeed()
    if not data.tenants:
        return seed
    for tenant in data.tenants:
        _grants(store, seed, tenant, data, actor)
    promoted = [t for t in data.tenants if t.plan == "pro"][-1:] or data.tenants[-1:]
    for tenant in promoted:
        _promotion(store, seed, tenant, data.end, actor)
    _budgets(store, seed, data, actor)
    return seed
