"""Every ClickHouse query of the committed dashboards runs on chdb over the demo data.

For each variable state below, the variables are resolved the way Grafana does (query
variables run their own SQL, in dashboard order), each panel's rawSql is expanded with
meterhouse/dashboards/macros.py, and ClickHouse must accept it, return exactly the columns the
panel reads with the right kinds of types, sort time series by time, and (in the main
state) find rows wherever the demo has data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from meterhouse.dashboards.grafana import Board
from meterhouse.dashboards.macros import QueryContext, Variable, expand
from meterhouse.dashboards.overview import BALANCE_SQL
from meterhouse.dashboards.spec import Kind, SqlQuery
from meterhouse.ledger.balance import account_balance
from meterhouse.store.base import Store
from tests.dashboards.engine import (
    END,
    INTERVAL,
    START,
    STATES,
    check_query,
    clickhouse_targets,
    kind_accepts,
    load_demo,
    resolve_variables,
)


@pytest.fixture
def demo_store(migrated_store: Store) -> Store:
    load_demo(migrated_store, scale=0.25)
    return migrated_store


def test_every_clickhouse_query_runs_on_the_demo(
    demo_store: Store, boards: list[Board], committed: dict[str, dict[str, Any]]
) -> None:
    problems: list[str] = []
    checked = 0
    for board in boards:
        dashboard = committed[board.spec.uid]
        specs = {q.panel: q for q in board.spec.sql if not q.variable}
        problems += _targets_match_specs(board, dashboard, specs)
        for state in STATES:
            try:
                variables = resolve_variables(demo_store, board, dashboard, state)
            except AssertionError as exc:
                problems.append(f"{board.spec.uid} [{state.name}] variables: {exc}")
                continue
            ctx = QueryContext(START, END, INTERVAL, variables)
            for title, target in clickhouse_targets(dashboard):
                spec = specs.get(title)
                if spec is None:
                    continue
                checked += 1
                where = f"{board.spec.uid} / {title} [{state.name}]"
                problems += check_query(demo_store, spec, target["rawSql"], ctx, where, state)
    problems += balance_against_ledger(demo_store)
    targets = sum(len(list(clickhouse_targets(d))) for d in committed.values())
    assert targets >= 30, f"only {targets} ClickHouse targets in the dashboards"
    assert checked == targets * len(STATES), f"{checked} of {targets} targets were checked"
    assert not problems, "\n\n".join(problems)


def balance_against_ledger(store: Store) -> list[str]:
    """The Overview's SQL balance (the running balance's anchor) equals the ledger's
    burn-down where its simplification holds.

    docs/dashboards.md: the SQL takes expired grants to be burned first. That holds when no
    expired grant has a later burn order (a higher priority number) than another grant.
    """
    problems: list[str] = []
    compared = 0
    for account, zone in store.query("SELECT account_id, time_zone FROM accounts FINAL").rows:
        grants = store.query(
            "SELECT priority, expires_at FROM credit_grants FINAL "
            "WHERE account_id = {a:String} AND voided = 0",
            {"a": account},
        ).rows
        lowest = min((priority for priority, _ in grants), default=0)
        if any(at is not None and at <= END and p > lowest for p, at in grants):
            continue
        ctx = QueryContext(
            START,
            END,
            INTERVAL,
            {"account": Variable("account", account), "tz": Variable("tz", zone)},
        )
        dashboard = store.query(expand(BALANCE_SQL, ctx)).scalar()
        ledger = account_balance(store, account, END).balance
        compared += 1
        if dashboard != ledger:
            problems.append(f"balance of {account}: dashboard {dashboard}, ledger {ledger}")
    if compared < 3:
        problems.append(f"the balance was compared for {compared} demo accounts only")
    return problems


def _targets_match_specs(
    board: Board, dashboard: Mapping[str, Any], specs: Mapping[str, SqlQuery]
) -> list[str]:
    """The JSON (what Grafana runs) and the spec (what the tests expect) are the same SQL."""
    seen = {title: target["rawSql"] for title, target in clickhouse_targets(dashboard)}
    problems = [
        f"{board.spec.uid} / {title}: the committed rawSql differs from the code"
        for title, sql in seen.items()
        if title in specs and specs[title].sql != sql
    ]
    problems += [f"{board.spec.uid} / {t}: no spec for this target" for t in seen.keys() - specs]
    problems += [f"{board.spec.uid} / {t}: not in the JSON" for t in specs.keys() - seen]
    return problems


def test_kinds_map_the_plugin_types() -> None:
    assert kind_accepts(Kind.TIME, "Nullable(DateTime64(3, 'UTC'))")
    assert kind_accepts(Kind.TIME, "Date")
    assert kind_accepts(Kind.NUMBER, "Nullable(Decimal(38, 12))")
    assert kind_accepts(Kind.STRING, "LowCardinality(String)")
    assert not kind_accepts(Kind.STRING, "SimpleAggregateFunction(any, String)")
    assert not kind_accepts(Kind.NUMBER, "String")
    assert not kind_accepts(Kind.TIME, "UInt32")
