"""The expander must do what the browser and the plugin do, or the SQL proof proves nothing.

Expected strings come from the shared reference macros.md (its worked examples from the
plugin's macros_test.go), the plugin's CHDatasource.ts and Grafana's format registry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterhouse.dashboards.macros import (
    ALL,
    MacroError,
    QueryContext,
    Variable,
    apply_conditional_all,
    expand,
    expand_backend_macros,
    grafana_interval,
    interpolate,
    seconds_to_hms,
)

# The range of macros.md's worked examples: F=1415792726.123, T=1447328726.456, 1m.
F = datetime.fromtimestamp(1415792726.123, UTC)
T = datetime.fromtimestamp(1447328726.456, UTC)
REFERENCE = QueryContext(F, T, timedelta(minutes=1))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "$__timeFilter(cast(sth as timestamp))",
            "cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "$__timeFilter_ms(cast(sth as timestamp))",
            "cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND "
            "cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)",
        ),
        (
            "( date >= $__fromTime_ms and date <= $__toTime_ms )",
            "( date >= fromUnixTimestamp64Milli(1415792726123) and "
            "date <= fromUnixTimestamp64Milli(1447328726456) )",
        ),
        (
            "SELECT $__timeInterval($__fromTime) AS from_time",
            "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) "
            "AS from_time",
        ),
        (
            "SELECT $__timeInterval_ms($__fromTime_ms)",
            "SELECT toStartOfInterval(toDateTime64(fromUnixTimestamp64Milli(1415792726123), 3), "
            "INTERVAL 60000 millisecond)",
        ),
    ],
)
def test_worked_examples_of_the_reference(sql: str, expected: str) -> None:
    assert expand_backend_macros(sql, REFERENCE) == expected


def test_the_other_backend_macros() -> None:
    ctx = QueryContext(
        datetime(2026, 11, 1, 23, 30, tzinfo=UTC),
        datetime(2026, 11, 20, 12, 0, 0, 900000, tzinfo=UTC),
        timedelta(seconds=0.5),
    )
    assert expand_backend_macros("$__dateFilter(d)", ctx) == (
        "d >= toDate('2026-11-01') AND d <= toDate('2026-11-20')"
    )
    assert expand_backend_macros("$__dt(d, t)", ctx) == (
        "(d >= toDate('2026-11-01') AND d <= toDate('2026-11-20')) AND "
        "(t >= toDateTime(1793575800) AND t <= toDateTime(1795176000))"
    )
    # Sub-second intervals are floored at 1 second; Unix() truncates the 0.9 s.
    assert expand_backend_macros("$__interval_s", ctx) == "1"
    assert expand_backend_macros("$__timeInterval(t)", ctx) == (
        "toStartOfInterval(toDateTime(t), INTERVAL 1 second)"
    )
    assert expand_backend_macros("$__timeFrom(t) AND $__timeTo(t)", ctx) == (
        "t >= toDateTime(1793575800) AND t <= toDateTime(1795176000)"
    )
    assert expand_backend_macros("$__timeGroup(t, '5m')", ctx) == (
        "toStartOfInterval(toDateTime(t), INTERVAL 300 second)"
    )
    assert expand_backend_macros("$__interval_ms", ctx) == "500"
    assert expand_backend_macros("$__interval", REFERENCE) == "1m"


def test_nested_macros_and_unknown_names() -> None:
    assert expand_backend_macros("$__timeFilter(coalesce(closed_at, $__toTime))", REFERENCE) == (
        "coalesce(closed_at, toDateTime(1447328726)) >= toDateTime(1415792726) AND "
        "coalesce(closed_at, toDateTime(1447328726)) <= toDateTime(1447328726)"
    )
    assert expand_backend_macros("$__notAMacro(x) $__toTimeX", REFERENCE) == (
        "$__notAMacro(x) $__toTimeX"
    )


def test_comments_strings_and_backticks_are_left_alone() -> None:
    sql = (
        "SELECT '$__fromTime', `$__toTime`, 'it\\'s $__toTime' -- $__fromTime\n"
        "/* $__toTime */ $__toTime"
    )
    assert expand_backend_macros(sql, REFERENCE) == (
        "SELECT '$__fromTime', `$__toTime`, 'it\\'s $__toTime' -- $__fromTime\n"
        "/* $__toTime */ toDateTime(1447328726)"
    )


def test_argument_errors_are_reported() -> None:
    with pytest.raises(MacroError, match="expected 1 argument"):
        expand_backend_macros("$__timeFilter(a, b)", REFERENCE)
    with pytest.raises(MacroError, match="statement macro"):
        expand_backend_macros("$__columns(t, k, v) FROM x", REFERENCE)


VARS = {
    "team": Variable("team", ALL, options=["data", "ml"]),
    "project": Variable("project", ["etl", "o'brien"]),
    "search": Variable("search", ""),
    "account": Variable("account", "acme"),
}


def test_conditional_all_follows_the_plugin() -> None:
    sql = (
        "WHERE $__conditionalAll(team_id IN (${team:singlequote}), $team) "
        "AND $__conditionalAll(project_id IN (${project:singlequote}), ${project}) "
        "AND $__conditionalAll(x LIKE concat('%', ${search:singlequote}), $search)"
    )
    assert apply_conditional_all(sql, VARS) == (
        "WHERE 1=1 AND project_id IN (${project:singlequote}) AND 1=1"
    )
    # A format in the second argument hides the variable: the condition always stays.
    odd = "$__conditionalAll(a IN (${team:singlequote}), ${team:singlequote})"
    assert apply_conditional_all(odd, VARS) == "a IN (${team:singlequote})"
    # Not exactly two arguments: the query is returned unchanged.
    assert apply_conditional_all("$__conditionalAll(a)", VARS) == "$__conditionalAll(a)"
    # JavaScript's replace() patterns in the condition are honoured ($$ -> $).
    assert apply_conditional_all("$__conditionalAll(a = '$$', $account)", VARS) == "a = '$'"


def test_variables_are_formatted_like_grafana() -> None:
    ctx = QueryContext(F, T, timedelta(minutes=1), VARS)
    assert interpolate("${project:singlequote}", ctx) == "'etl','o\\'brien'"
    assert interpolate("${project:sqlstring}", ctx) == "'etl','o''brien'"
    # The plugin's own format quotes a multi-value but escapes nothing: always :singlequote.
    assert interpolate("$project", ctx) == "'etl','o'brien'"
    assert interpolate("[[account]] ${account} ${account:singlequote}", ctx) == "acme acme 'acme'"
    assert interpolate("${team:csv}", ctx) == "data,ml"  # All = every option
    assert interpolate("${team:raw}", ctx) == "data,ml"
    custom_all = {"team": Variable("team", ALL, options=["a"], all_value=".*")}
    assert (
        interpolate("${team:singlequote}", QueryContext(F, T, REFERENCE.interval, custom_all))
        == ".*"
    )
    assert interpolate("$__from $__to ${__from:date:seconds}", ctx) == (
        "1415792726123 1447328726456 1415792726"
    )
    assert interpolate("$__interval $__interval_ms $__timeFilter(x) $nope", ctx) == (
        "1m 60000 $__timeFilter(x) $nope"
    )
    with pytest.raises(MacroError, match="not implemented"):
        interpolate("${account:lucene}", ctx)


def test_expand_runs_the_three_steps_in_order() -> None:
    ctx = QueryContext(F, T, timedelta(minutes=1), VARS)
    sql = (
        "SELECT 1 FROM t WHERE account_id = ${account:singlequote} "
        "AND $__conditionalAll(team_id IN (${team:singlequote}), $team) "
        "AND $__conditionalAll(project_id IN (${project:singlequote}), $project) "
        "AND $__timeFilter(ts)"
    )
    assert expand(sql, ctx) == (
        "SELECT 1 FROM t WHERE account_id = 'acme' AND 1=1 "
        "AND project_id IN ('etl','o\\'brien') "
        "AND ts >= toDateTime(1415792726) AND ts <= toDateTime(1447328726)"
    )


def test_grafana_interval_rounding() -> None:
    start = datetime(2026, 10, 21, tzinfo=UTC)
    assert grafana_interval(start, start + timedelta(days=30), 1000, timedelta(0)) == timedelta(
        minutes=30
    )
    assert grafana_interval(start, start + timedelta(hours=1), 1000, timedelta(seconds=15)) == (
        timedelta(seconds=15)
    )
    assert seconds_to_hms(7200) == "2h"
    assert seconds_to_hms(0.5) == "500ms"
    assert seconds_to_hms(86400 * 3 + 5) == "3d"
