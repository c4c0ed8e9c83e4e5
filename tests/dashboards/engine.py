"""Dashboard queries run on the engine the way Grafana runs them.

The variable states the tests (and benchmarks/dashboards.py) use, Grafana's variable
initialisation in dashboard order, and the checks every expanded target must pass: shared
by tests/dashboards/test_queries.py and the dashboards benchmark, so both run exactly the
same SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meterhouse.dashboards import checks
from meterhouse.dashboards.grafana import Board
from meterhouse.dashboards.macros import QueryContext, Variable, grafana_interval
from meterhouse.dashboards.spec import SqlQuery
from meterhouse.demo.generator import DemoData, generate
from meterhouse.demo.runner import run_demo
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store
from tests.dashboards.seed import seed_missing

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = END - timedelta(days=30)
# Grafana's default for a panel about 1000 px wide, and the data source's 15 s minimum.
INTERVAL = grafana_interval(START, END, 1000, timedelta(seconds=15))


@dataclass(frozen=True)
class State:
    """What a person picked in the variable drop-downs (absent: Grafana's default)."""

    name: str
    picks: Mapping[str, str | list[str]] = field(default_factory=dict)
    rows_expected: bool = False


STATES = (
    # The default view of a dashboard: first account (acme, Europe/Paris), everything "All".
    State("defaults", rows_expected=True),
    # Another account and time zone, several teams and projects, text with a space.
    State(
        "narrowed",
        {
            "account": "globex",
            "team": "FIRST",
            "project": "EVERY",
            "job_kind": ["asset", "webhook"],
            "level": ["error", "warning"],
            "kind": ["model", "job"],
            "search": "Timed OUT",
        },
    ),
    # A value with a quote must arrive as one escaped literal, not break the SQL.
    State("quoted", {"account": "o'brien", "search": "it's", "run": "run_'x"}),
)


def load_demo(store: Store, *, scale: float) -> DemoData:
    """The demo the dashboards are proven on, stored in a migrated ``store``.

    From October 1st: "last month, same days" has a whole month to compare with.
    """
    data = generate(END, days=51, seed=7, scale=scale)
    run_demo(store, data, Rater.default(), actor="test", progress=_quiet)
    seed_missing(store, [tenant.account_id for tenant in data.tenants], END)
    return data


def _quiet(step: str, done: int, total: int) -> None:
    del step, done, total


def resolve_variables(
    store: Store, board: Board, dashboard: Mapping[str, Any], state: State, *, check: bool = True
) -> dict[str, Variable]:
    """The variables of ``board`` under ``state``, at the tests' time range."""
    try:
        return checks.resolve_variables(
            store, board.spec.sql, dashboard, state.picks, (START, END, INTERVAL), check=check
        )
    except checks.CheckError as exc:
        raise AssertionError(str(exc)) from None


def check_query(
    store: Store, spec: SqlQuery, raw_sql: str, ctx: QueryContext, where: str, state: State
) -> list[str]:
    return checks.check_query(store, spec, raw_sql, ctx, where, rows_expected=state.rows_expected)


clickhouse_targets = checks.clickhouse_targets
kind_accepts = checks.kind_accepts
