"""The demo's ledger: allowances, top-ups, an expired promotion, budgets, readable statements."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterhouse.demo.generator import DemoData, demo_tenants
from meterhouse.demo.ledger_seed import seed_ledger
from meterhouse.demo.runner import store_tenants
from meterhouse.ledger import budgets as b
from meterhouse.ledger.grants import list_grants
from meterhouse.ledger.months import MonthSpan, zone_of
from meterhouse.ledger.statement import build_statement
from meterhouse.ledger.statement_formats import render
from meterhouse.store.base import Store
from tests.ledger.helpers import Usage, write_usage

END = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def demo_with_usage(store: Store) -> DemoData:
    """The demo's tenants with a little priced usage each (no dependence on rating)."""
    tenants = demo_tenants(random.Random(7))
    data = DemoData(tenants=tenants, events=[], start=END - timedelta(days=45), end=END)
    store_tenants(store, data, "demo")
    for tenant in tenants:
        used = [
            Usage(
                END - timedelta(days=day, hours=1),
                (("input", Decimal(10_000), Decimal("0.002")),),
                team=team,
                project=project,
            )
            for day in range(0, 40, 3)
            for team, project, _ in tenant.projects
        ]
        write_usage(store, tenant.account_id, used)
    return data


def test_demo_accounts_get_grants_budgets_and_statements_that_reconcile(
    migrated_store: Store,
) -> None:
    store = migrated_store
    data = demo_with_usage(store)
    seed = seed_ledger(store, data, "demo")
    assert seed.grants_created > 0
    assert seed_ledger(store, data, "demo").grants_created == 0  # running again credits nothing

    for tenant in data.tenants:
        kinds = sorted(g["kind"] for g in list_grants(store, tenant.account_id))
        assert kinds.count("plan_allowance") == 2, tenant.account_id
        zone = zone_of(tenant.time_zone)
        this = MonthSpan.containing(END, zone)
        last = MonthSpan.containing(this.start - timedelta(days=1), zone)
        for span in (last, this):
            statement = build_statement(store, tenant.account_id, span.month, now=END)
            for fmt in ("table", "csv", "json", "html"):
                assert render(statement, fmt)
            assert any(line.type == "grant" for line in statement.lines)
    top_ups = {
        t.account_id
        for t in data.tenants
        if any(g["kind"] == "top_up" for g in list_grants(store, t.account_id))
    }
    assert top_ups == {"acme", "initech", "tinyco"}

    umbrella = next(t for t in data.tenants if t.account_id == "umbrella")
    november = build_statement(
        store, "umbrella", MonthSpan.containing(END, zone_of(umbrella.time_zone)).month, now=END
    )
    expiries = [line for line in november.lines if line.type == "expiry"]
    assert any("Promotional" in line.description and line.debit == 1500 for line in expiries)

    statuses = b.budget_statuses(store, END)
    assert {s.budget.account_id for s in statuses if s.budget.scope == "account"} == {
        t.account_id for t in data.tenants
    }
    hot = [s for s in statuses if s.budget.scope != "account"]
    assert len(hot) == 1 and hot[0].used_ratio > Decimal("0.8") and 80 in hot[0].crossed
