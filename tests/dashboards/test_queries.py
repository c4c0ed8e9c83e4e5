"""Every ClickHouse query of the committed dashboards runs on chdb over the demo data.

For each variable state below, the variables are resolved the way Grafana does (query
variables run their own SQL, in dashboard order), each panel's rawSql is expanded with
tests/dashboards/macros.py, and ClickHouse must accept it, return exactly the columns the
panel reads with the right kinds of types, sort time series by time, and (in the main
state) find rows wherever the demo has data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterhouse.dashboards.grafana import Board
from meterhouse.dashboards.spec import Column, Kind, SqlQuery
from meterhouse.demo.generator import generate
from meterhouse.demo.runner import run_demo
from meterhouse.errors import StoreError
from meterhouse.ledger.balance import account_balance
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


@pytest.fixture
def demo_store(migrated_store: Store) -> Store:
    # From October 1st: "last month, same days" has a whole month to compare with.
    data = generate(END, days=51, seed=7, scale=0.25)
    run_demo(migrated_store, data, Rater.default(), actor="test", progress=_quiet)
    seed_missing(migrated_store, [tenant.account_id for tenant in data.tenants], END)
    return migrated_store


def _quiet(step: str, done: int, total: int) -> None:
    del step, done, total


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
    problems += balance_against_ledger(demo_store, boards[0])
    targets = sum(len(list(clickhouse_targets(d))) for d in committed.values())
    assert targets >= 30, f"only {targets} ClickHouse targets in the dashboards"
    assert checked == targets * len(STATES), f"{checked} of {targets} targets were checked"
    assert not problems, "\n\n".join(problems)


def balance_against_ledger(store: Store, overview: Board) -> list[str]:
    """The Overview's SQL balance equals the ledger's burn-down where its simplification holds.

    docs/dashboards.md: the SQL takes expired grants to be burned first. That holds when no
    expired grant has a later burn order (a higher priority number) than another grant.
    """
    spec = next(q for q in overview.spec.sql if q.panel == "Current balance")
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
        dashboard = store.query(expand(spec.sql, ctx)).scalar()
        ledger = account_balance(store, account, END).balance
        compared += 1
        if dashboard != ledger:
            problems.append(f"balance of {account}: dashboard {dashboard}, ledger {ledger}")
    if compared < 3:
        problems.append(f"the balance was compared for {compared} demo accounts only")
    return problems


def clickhouse_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == CLICKHOUSE:
                yield panel["title"], target


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


def resolve_variables(
    store: Store, board: Board, dashboard: Mapping[str, Any], state: State
) -> dict[str, Variable]:
    """Grafana's variable initialisation, in order, each query seeing the ones before."""
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
            problems = check_query(store, spec, model["query"], ctx, f"${name}", state)
            assert not problems, "\n".join(problems)
            options = [str(row[0]) for row in store.query(expand(model["query"], ctx)).rows]
        else:
            raise AssertionError(f"${name}: variable type {kind!r} is not handled by this test")
        resolved[name] = Variable(name, _choose(model, options, pick), options=options)
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


def test_kinds_map_the_plugin_types() -> None:
    assert kind_accepts(Kind.TIME, "Nullable(DateTime64(3, 'UTC'))")
    assert kind_accepts(Kind.TIME, "Date")
    assert kind_accepts(Kind.NUMBER, "Nullable(Decimal(38, 12))")
    assert kind_accepts(Kind.STRING, "LowCardinality(String)")
    assert not kind_accepts(Kind.STRING, "SimpleAggregateFunction(any, String)")
    assert not kind_accepts(Kind.NUMBER, "String")
    assert not kind_accepts(Kind.TIME, "UInt32")
