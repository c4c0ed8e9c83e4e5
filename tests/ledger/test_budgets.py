"""Budgets: audited changes, the month in the account's zone, and the gauges' values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from meterhouse.access import tenants
from meterhouse.ledger import budgets as b
from meterhouse.ledger.balance import account_balance
from meterhouse.ledger.errors import LedgerError, LedgerNotFoundError
from meterhouse.ledger.grants import create_grant
from meterhouse.ledger.metrics import LedgerMetrics
from meterhouse.store.base import Store
from tests.ledger.helpers import Usage, make_account, write_usage

TOKYO = ZoneInfo("Asia/Tokyo")
NOVEMBER = date(2026, 11, 1)
# Half of November in Tokyo: 15 of its 30 days have passed.
MID_NOVEMBER = datetime(2026, 11, 16, tzinfo=TOKYO)


def setup_account(store: Store) -> None:
    make_account(store, "umbrella", "Asia/Tokyo")
    tenants.upsert_team(store, "umbrella", "ml", "ML", actor="test", create=True)
    tenants.upsert_project(
        store, "umbrella", "rag", team_id="ml", name="RAG", actor="test", create=True
    )
    write_usage(
        store,
        "umbrella",
        [
            # 31 October 23:30 UTC is 1 November in Tokyo: it counts for November.
            Usage(
                datetime(2026, 10, 31, 23, 30, tzinfo=UTC), (("call", Decimal(1), Decimal(100)),)
            ),
            Usage(
                datetime(2026, 11, 5, tzinfo=UTC),
                (("call", Decimal(1), Decimal(300)),),
                team="ml",
                project="rag",
            ),
            Usage(
                datetime(2026, 11, 10, tzinfo=UTC), (("call", Decimal(1), Decimal(200)),), team="ml"
            ),
            # 31 October 14:00 UTC is still October in Tokyo: it does not count.
            Usage(datetime(2026, 10, 31, 14, tzinfo=UTC), (("call", Decimal(1), Decimal(999)),)),
            # After the status time: not used yet.
            Usage(datetime(2026, 11, 20, tzinfo=UTC), (("call", Decimal(1), Decimal(50)),)),
        ],
    )


def test_set_list_delete_are_audited_and_standing_budgets_fill_in(migrated_store: Store) -> None:
    store = migrated_store
    setup_account(store)
    b.set_budget(
        store, account_id="umbrella", scope="account", amount=Decimal(1000), month=None, actor="t"
    )
    b.set_budget(
        store,
        account_id="umbrella",
        scope="account",
        amount=Decimal(2000),
        month=NOVEMBER,
        actor="t",
    )
    b.set_budget(
        store,
        account_id="umbrella",
        scope="project",
        scope_id="rag",
        amount=Decimal(400),
        month=NOVEMBER,
        thresholds=(90, 75),
        actor="t",
    )
    listed = [x.to_dict() for x in b.list_budgets(store, "umbrella")]
    assert [(x["scope"], x["month"], x["amount"]) for x in listed] == [
        ("account", "every", "1000"),
        ("account", "2026-11", "2000"),
        ("project", "2026-11", "400"),
    ]
    assert listed[2]["thresholds"] == "75,90"

    november = {
        (s.budget.scope, s.budget.scope_id): s for s in b.budget_statuses(store, MID_NOVEMBER)
    }
    assert november[("account", "umbrella")].budget.amount == 2000  # the month's own wins
    december = b.budget_statuses(store, datetime(2026, 12, 3, tzinfo=UTC))
    assert [(s.budget.scope, s.budget.amount) for s in december] == [("account", 1000)]

    b.delete_budget(store, account_id="umbrella", scope="account", month=NOVEMBER, actor="t")
    after = {(s.budget.scope, s.budget.scope_id): s for s in b.budget_statuses(store, MID_NOVEMBER)}
    assert after[("account", "umbrella")].budget.amount == 1000
    with pytest.raises(LedgerNotFoundError, match="no account budget"):
        b.delete_budget(store, account_id="umbrella", scope="account", month=NOVEMBER, actor="t")

    actions = store.query(
        "SELECT action FROM audit_log WHERE target_type = 'budget' ORDER BY at"
    ).column("action")
    assert actions == ["budget.set", "budget.set", "budget.set", "budget.delete"]


BAD_BUDGETS = [
    ({"scope": "org"}, "scope must be one of"),
    ({"scope": "team", "scope_id": "ghost"}, "no team ghost"),
    ({"scope": "project"}, "needs the project id"),
    ({"account_id": "ghost"}, "no account ghost"),
    ({"amount": Decimal(-5)}, "positive"),
    ({"thresholds": (0, 80)}, "between 1 and 255"),
]


def test_bad_budgets_are_refused_with_the_reason(migrated_store: Store) -> None:
    setup_account(migrated_store)
    for fields, message in BAD_BUDGETS:
        given: dict[str, object] = {
            "account_id": "umbrella",
            "scope": "account",
            "amount": Decimal(10),
            "month": None,
            "actor": "t",
            **fields,
        }
        with pytest.raises(LedgerError, match=message):
            b.set_budget(migrated_store, **given)  # type: ignore[arg-type]
    assert b.list_budgets(migrated_store) == []


def test_status_counts_the_month_in_the_account_zone_and_forecasts_the_run_rate(
    migrated_store: Store,
) -> None:
    store = migrated_store
    setup_account(store)
    b.set_budget(
        store, account_id="umbrella", scope="account", amount=Decimal(1000), month=None, actor="t"
    )
    b.set_budget(
        store,
        account_id="umbrella",
        scope="team",
        scope_id="ml",
        amount=Decimal(400),
        month=None,
        actor="t",
    )
    statuses = {s.budget.scope: s for s in b.budget_statuses(store, MID_NOVEMBER, "umbrella")}
    account, team = statuses["account"], statuses["team"]
    assert account.used == 600 and account.elapsed_fraction == Decimal("0.5")
    assert account.used_ratio == Decimal("0.6") and account.forecast_ratio == Decimal("1.2")
    assert account.crossed == (50,) and account.forecast_crossed == (50, 80, 100)
    assert team.used == 500 and team.used_ratio == Decimal("1.25") and team.crossed == (50, 80, 100)
    shown = account.to_dict()
    assert (shown["used_pct"], shown["forecast_pct"], shown["crossed"]) == (
        "60.0%",
        "120.0%",
        "50%",
    )


def test_elapsed_time_counts_at_least_one_day() -> None:
    from meterhouse.ledger.months import MonthSpan

    span = MonthSpan.of(NOVEMBER, TOKYO)
    assert span.elapsed_fraction(span.start + timedelta(minutes=5)) == Decimal(1) / Decimal(30)
    assert span.elapsed_fraction(span.end + timedelta(days=3)) == 1


def test_gauges_export_budget_ratios_forecast_amount_and_balance(migrated_store: Store) -> None:
    store = migrated_store
    setup_account(store)
    make_account(store, "quiet")  # no budget: only a balance
    create_grant(
        store,
        account_id="umbrella",
        kind="plan_allowance",
        amount=Decimal(5000),
        effective_at=datetime(2026, 10, 1, tzinfo=UTC),
        idempotency_key="allowance",
        actor="t",
    )
    b.set_budget(
        store, account_id="umbrella", scope="account", amount=Decimal(1000), month=None, actor="t"
    )
    b.set_budget(
        store,
        account_id="umbrella",
        scope="project",
        scope_id="rag",
        amount=Decimal(250),
        month=NOVEMBER,
        actor="t",
    )
    metrics = LedgerMetrics(store)
    registry = CollectorRegistry()
    registry.register(metrics)
    assert registry.get_sample_value("meterhouse_ledger_metrics_refresh_ok") == 0
    assert metrics.refresh(MID_NOVEMBER)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    account = {"account": "umbrella", "scope": "account", "scope_id": "umbrella"}
    project = {"account": "umbrella", "scope": "project", "scope_id": "rag"}
    assert value("meterhouse_budget_used_ratio", **account) == pytest.approx(0.6)
    assert value("meterhouse_budget_forecast_ratio", **account) == pytest.approx(1.2)
    assert value("meterhouse_budget_amount_credits", **account) == 1000
    assert value("meterhouse_budget_used_ratio", **project) == pytest.approx(1.2)
    assert value("meterhouse_budget_forecast_ratio", **project) == pytest.approx(2.4)
    expected = account_balance(store, "umbrella", MID_NOVEMBER).balance
    assert expected == 5000 - 999 - 600
    assert value("meterhouse_account_balance_credits", account="umbrella") == float(expected)
    assert value("meterhouse_account_balance_credits", account="quiet") == 0
    assert (
        value("meterhouse_budget_used_ratio", account="quiet", scope="account", scope_id="quiet")
        is None
    )
    assert value("meterhouse_ledger_metrics_refresh_ok") == 1
    labels = {
        tuple(sorted(sample.labels))
        for family in registry.collect()
        if family.name.startswith("meterhouse_budget")
        for sample in family.samples
    }
    assert labels == {("account", "scope", "scope_id")}
