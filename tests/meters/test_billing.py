"""A priced meter is billed like model calls: its own statement lines with the meter's
unit, in the balance and in budgets, to the last digit; an unpriced meter is flagged."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from meterhouse.access import tenants
from meterhouse.dashboards import build_boards, usage
from meterhouse.dashboards.checks import clickhouse_targets
from meterhouse.dashboards.macros import QueryContext, expand, grafana_interval
from meterhouse.ledger.balance import account_balance
from meterhouse.ledger.budgets import budget_statuses, set_budget
from meterhouse.ledger.grants import create_grant
from meterhouse.ledger.months import MonthSpan, zone_of
from meterhouse.ledger.statement import build_statement
from meterhouse.rating.price_book import PriceBook
from meterhouse.store.base import Store
from tests.dashboards.engine import State, resolve_variables
from tests.ingest.conftest import make_service

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"

TYPE = "gpu.usage"
METERS = """\
meters:
  - {slug: gpu_minutes, eventType: gpu.usage, aggregation: SUM, valueProperty: $.minutes,
     unit: minute}
  - {slug: gpu_jobs, eventType: gpu.usage, aggregation: COUNT, unit: job}
  - {slug: gpu_peak, eventType: gpu.usage, aggregation: MAX, valueProperty: $.minutes}
"""
TWELVE = Decimal("1e-12")


def _q(value: Decimal) -> Decimal:
    return value.quantize(TWELVE, rounding=ROUND_HALF_EVEN)


def _event(index: int, account: str, minutes: Any, at: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"g{index}",
        "source": "platform.test",
        "type": TYPE,
        "subject": f"{account}-user",
        "time": at.isoformat(),
        "data": {"account_id": account, "minutes": minutes, "team_id": "ml"},
    }


def test_a_priced_meter_reconciles_in_statement_balance_and_budget(
    migrated_store: Store, tmp_path: Path
) -> None:
    store = migrated_store
    meters_file = tmp_path / "meters.yaml"
    meters_file.write_text(METERS)
    for account, plan in (("acme", "pro"), ("bigco", "enterprise")):
        tenants.create_account(store, account, actor="test", plan=plan, time_zone="Europe/Berlin")
    now = datetime.now(UTC)
    zone = zone_of("Europe/Berlin")
    span = MonthSpan.containing(now, zone)
    create_grant(
        store,
        account_id="acme",
        kind="top_up",
        amount=Decimal(100_000),
        effective_at=span.start - timedelta(days=1),
        idempotency_key="t1",
        actor="test",
    )
    set_budget(store, account_id="acme", scope="account", amount=Decimal(50_000), month=None,
               actor="test")  # fmt: skip
    service = make_service(store, meters_file=str(meters_file))
    rng = random.Random(4)
    sent: list[tuple[str, Decimal]] = []
    events = []
    earliest = max(span.start, now - timedelta(days=20))
    for index in range(300):
        account = rng.choice(["acme", "bigco"])
        minutes = Decimal(rng.randrange(1, 10**7)) / Decimal(10 ** rng.randrange(0, 5))
        at = earliest + (now - timedelta(minutes=1) - earliest) * rng.random()
        wire: Any = str(minutes) if index % 2 else float(minutes)
        if Decimal(str(wire)) != minutes:
            wire = str(minutes)
        events.append(_event(index, account, wire, at))
        sent.append((account, minutes))
    for start in range(0, len(events), 100):
        assert service.post(events[start : start + 100]).status == 204
    assert service.post(events[:50]).status == 204  # re-delivered: billed once

    book = PriceBook.load()
    price = book.meter_price("gpu_minutes")
    assert price is not None
    credits_per_usd = book.credits_per_usd("pro")
    assert credits_per_usd is not None
    per_minute = price.usd_per_unit * credits_per_usd
    acme = [minutes for account, minutes in sent if account == "acme"]
    expected = sum((_q(m * per_minute) for m in acme), Decimal(0))
    expected_usd = sum((_q(m * price.usd_per_unit) for m in acme), Decimal(0))
    bigco = [m for account, m in sent if account == "bigco"]
    bigco_expected = sum(
        (_q(m * price.plan_credits_per_unit["enterprise"]) for m in bigco), Decimal(0)
    )

    statement = build_statement(store, "acme", span.month)
    meter_lines = [line for line in statement.lines if line.kind == "meter"]
    minutes_lines = [line for line in meter_lines if line.item == "gpu_minutes"]
    assert {line.unit for line in minutes_lines} == {"minute"}
    assert sum((line.debit for line in minutes_lines), Decimal(0)) == expected
    assert sum((line.quantity or 0 for line in minutes_lines), Decimal(0)) == sum(acme)
    assert sum((line.usd or 0 for line in minutes_lines), Decimal(0)) == expected_usd
    assert statement.usage_total == expected  # the unpriced COUNT meter adds nothing
    assert statement.unpriced_events == len(acme)  # gpu_jobs has no price: flagged
    assert {line.item for line in meter_lines} == {"gpu_minutes", "gpu_jobs"}
    assert "Meter gpu_minutes" in minutes_lines[0].description

    balance = account_balance(store, "acme")
    assert balance.consumed == expected
    assert balance.balance == Decimal(100_000) - expected
    (budget,) = [b for b in budget_statuses(store, account_id="acme")]
    assert budget.used == expected
    assert build_statement(store, "bigco", span.month).usage_total == bigco_expected
    unpriced = store.query(
        "SELECT count(), sum(credits), any(unpriced_reason) FROM usage_events "
        "WHERE item = 'gpu_jobs' AND priced = 0"
    ).rows[0]
    assert unpriced == (len(sent), Decimal(0), "no_meter_price")
    assert store.query("SELECT count() FROM usage_events WHERE item = 'gpu_peak'").scalar() == 0
    shown = _usage_dashboard_lines(store, span.start - timedelta(days=1), now)
    assert shown["gpu_minutes", "minute"] == expected
    assert shown["gpu_jobs", "job"] == 0


def _usage_dashboard_lines(
    store: Store, start: datetime, end: datetime
) -> dict[tuple[str, str], Decimal]:
    """The Usage statement dashboard's statement table, as Grafana runs it for acme with
    every other variable left at "All": (item, unit) -> credits of its kind-meter rows."""
    board = next(b for b in build_boards() if b.spec.uid == usage.UID)
    committed = json.loads((DASHBOARDS / board.spec.file_name).read_text(encoding="utf-8"))
    variables = resolve_variables(store, board, committed, State("acme", {"account": "acme"}))
    ctx = QueryContext(
        start, end, grafana_interval(start, end, 1000, timedelta(seconds=15)), variables
    )
    sql = next(
        t["rawSql"] for _, t in clickhouse_targets(committed) if t["rawSql"] == usage.STATEMENT_SQL
    )
    result = store.query(expand(sql, ctx))
    return {
        (row["Item"], row["Unit"]): row["Credits"]
        for row in result.dicts()
        if row["Kind"] == "meter"
    }
