"""Dashboard queries run on the engine the way Grafana runs them.

Grafana's variable initialisation (query variables run their own SQL, in dashboard order,
each seeing the ones before), then each panel's SQL expanded as the ClickHouse plugin does
(meterhouse/dashboards/macros.py) and checked: ClickHouse accepts it, it returns exactly
the columns the panel reads with the right kinds of types, time series come sorted.
`meterhouse dashboards custom validate` and the tests of the built-in dashboards use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from meterhouse.dashboards.macros import ALL, QueryContext, Variable, expand
from meterhouse.dashboards.spec import Column, Kind, SqlQuery
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.store.base import Store

CLICKHOUSE: Final = "grafana-clickhouse-datasource"
LEFTOVER: Final = re.compile(r"\$\{|\$\w|\[\[\w")


class CheckError(MeterhouseError):
    """A dashboard's variables cannot be resolved on the engine."""


def clickhouse_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == CLICKHOUSE:
                yield panel["title"], target


def resolve_variables(
    store: Store,
    specs: Sequence[SqlQuery],
    dashboard: Mapping[str, Any],
    picks: Mapping[str, str | list[str]],
    span: tuple[datetime, datetime, timedelta],
    *,
    check: bool = True,
) -> dict[str, Variable]:
    """Grafana's variable initialisation, in order, each query seeing the ones before.

    ``picks``: what a person chose (absent: Grafana's default; "FIRST" and "EVERY" pick
    the first or every option). ``check``: each variable query must pass ``check_query``.
    """
    resolved: dict[str, Variable] = {}
    variable_specs = {q.panel[1:]: q for q in specs if q.variable}
    for model in dashboard["templating"].get("list", []):
        name, kind = model["name"], model["type"]
        pick = picks.get(name)
        if kind == "textbox":
            resolved[name] = Variable(name, str(pick or model.get("query", "")))
            continue
        if kind == "custom":
            options = [o.strip() for o in model["query"].split(",")]
        elif kind == "query":
            spec = variable_specs.get(name)
            if spec is None or spec.sql != model["query"]:
                raise CheckError(f"${name}: the query differs from the code that builds it")
            ctx = QueryContext(*span, resolved)
            if check:
                problems = check_query(store, spec, model["query"], ctx, f"${name}")
                if problems:
                    raise CheckError("\n".join(problems))
            options = [str(row[0]) for row in store.query(expand(model["query"], ctx)).rows]
        else:
            raise CheckError(f"${name}: variable type {kind!r} is not handled")
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
    store: Store,
    spec: SqlQuery,
    raw_sql: str,
    ctx: QueryContext,
    where: str,
    *,
    rows_expected: bool = False,
) -> list[str]:
    """What is wrong with a panel's query on the engine (nothing: an empty list)."""
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
    if rows_expected and spec.expect_rows and not result.rows:
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
