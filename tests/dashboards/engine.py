"""Dashboard queries run on the engine the way Grafana runs them.

The variable states the tests (and benchmarks/dashboards.py) use, Grafana's variable
initialisation in dashboard order, and the checks every expanded target must pass: shared
by tests/dashboards/test_queries.py and the dashboards benchmark, so both run exactly the
same SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meterhouse.dashboards.grafana import Board
from meterhouse.dashboards.spec import Column, Kind, SqlQuery
from meterhouse.demo.generator import DemoData, generate
from meterhouse.demo.runner import run_demo
from meterhouse.errors import StoreError
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store
from tests.dashboards.macros import ALL, QueryContext, Variable, expand, grafana_interval
from tests.dashboards.seed import seed_missing

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = END - timedelta(days=30)
# Grafana's default for a panel about 1000 px wide, and the data source's 15 s minimum.
INTERVAL = grafana_interval(START, END, 1000, timedelta(seconds=15))

CLICKHOUSE = "grafana-clickhouse-datasource"
LEFTOVER = re.compile(r"\$\{|\$\w|\[\[\w")


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


def clickhouse_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == CLICKHOUSE:
                yield panel["title"], target


def resolve_variables(
    store: Store, board: Board, dashboard: Mapping[str, Any], state: State, *, check: bool = True
) -> dict[str, Variable]:
    """Grafana's variable initialisation, in order, each query seeing the ones before.

    ``check``: each variable query must also pass ``check_query`` (off when timing).
    """
    resolved: dict[str, Variable] = {}
    variable_specs = {q.panel[1:]: q for q in board.spec.sql if q.variable}
    for model in dashboard["templating"].get("list", []):
        name, kind = model["name"], model["type"]
        pick = state.picks.get(name)
        if kind == "textbox":
            resolved[name] = Variable(name, str(pick or model.get("query", "")))
            continue
        if kind == "custom":
            options = [o.strip() for o in model["query"].split(",")]
        elif kind == "query":
            spec = variable_specs[name]
            assert spec.sql == model["query"], f"${name}: committed query differs from the code"
            ctx = QueryContext(START, END, INTERVAL, resolved)
            if check:
                problems = check_query(store, spec, model["query"], ctx, f"${name}", state)
                assert not problems, "\n".join(problems)
            options = [str(row[0]) for row in store.query(expand(model["query"], ctx)).rows]
        else:
            raise AssertionError(f"${name}: variable type {kind!r} is not handled by this test")
        resolved[name] = Variable(
            name, _choose(model, options, pick), options=options, all_value=model.get("allValue")
        )
    return resolved


def _choose(model: Mapping[str, Any], options: list[str], pick: object) -> str | list[str]:
    if pick is None:
        # Grafana's default: "All" when offered, else the first option (or nothing).
        if model.get("includeAll"):
            return [ALL] if model.get("multi") else ALL
        return options[0] if options else ""
    if pick == "FIRST":
        return options[:1]
    if pick == "EVERY":
        return list(options)
    if isinstance(pick, list):
        return [value for value in pick if value in options] or pick
    return str(pick)


def check_query(
    store: Store, spec: SqlQuery, raw_sql: str, ctx: QueryContext, where: str, state: State
) -> list[str]:
    sql = expand(raw_sql, ctx)
    leftover = _leftovers(sql)
    if leftover:
        return [f"{where}: not expanded: {leftover}\n{sql}"]
    try:
        described = store.query(f"DESCRIBE ({sql})")
        result = store.query(sql)
    except StoreError as exc:
        return [f"{where}: ClickHouse refused the query: {exc}\n{sql}"]
    got = [(str(row[0]), str(row[1])) for row in described.rows]
    problems = _column_problems(spec.columns, got)
    if spec.time_series and result.rows:
        times = [row[0] for row in result.rows]
        if times != sorted(times):
            problems.append("time series rows are not sorted by time")
    if state.rows_expected and spec.expect_rows and not result.rows:
        problems.append("no rows, though the demo has data for this panel")
    return [f"{where}: {p}\n{sql}" for p in problems]


def _leftovers(sql: str) -> list[str]:
    # Quoted literals and double-quoted names may hold "$" legitimately (e.g. "Input $/Mtok").
    bare = re.sub(r"'(?:\\.|''|[^'\\])*'|\"[^\"]*\"", "''", sql)
    return LEFTOVER.findall(bare)


def _column_problems(wanted: tuple[Column, ...], got: list[tuple[str, str]]) -> list[str]:
    names = [name for name, _ in got]
    if names != [c.name for c in wanted]:
        return [f"columns {names}, the panel reads {[c.name for c in wanted]}"]
    return [
        f"column {c.name!r} is {type_name}, the panel needs a {c.kind.value}"
        for c, (_, type_name) in zip(wanted, got, strict=True)
        if not kind_accepts(c.kind, type_name)
    ]


_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def kind_accepts(kind: Kind, type_name: str) -> bool:
    """Whether the plugin turns a ClickHouse type into the field kind a panel needs.

    Aggregate-function types are refused: the plugin's converters know the plain types.
    """
    inner = type_name
    while match := _WRAPPERS.match(inner):
        inner = match.group(1)
    if "AggregateFunction" in inner:
        return False
    if kind is Kind.ANY:
        return True
    if kind is Kind.TIME:
        return inner.startswith(("DateTime", "Date"))
    if kind is Kind.NUMBER:
        return re.match(r"^(U?Int\d+|Float\d+|Decimal)", inner) is not None
    return inner.startswith(("String", "FixedString", "Enum"))
