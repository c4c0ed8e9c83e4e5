"""SQL pieces every ClickHouse panel shares: tenant filters and the account's calendar.

Template variables are interpolated by Grafana before ClickHouse parses the query, so
``${tz:singlequote}`` becomes a constant string literal: that is what lets the time zone
argument of ``toTimeZone``/``toDateTime`` (which ClickHouse requires to be constant) follow
the selected account.

"Now" is the end of the dashboard's time range (``$__toTime``), not the server clock: with
the default range (ending "now") that is the present, and moving the range end to a past
date shows "this month" as it was then. Only freshness checks (sync age) use ``now()``.
"""

from __future__ import annotations

from typing import Final

ACCOUNT: Final = "${account:singlequote}"
TZ: Final = "${tz:singlequote}"

ACCOUNT_FILTER: Final = f"account_id = {ACCOUNT}"
# With "All" selected the plugin replaces the whole call by 1=1: no IN list of every id.
TEAM_FILTER: Final = "$__conditionalAll(team_id IN (${team:singlequote}), $team)"
PROJECT_FILTER: Final = "$__conditionalAll(project_id IN (${project:singlequote}), $project)"
TENANT_FILTER: Final = f"{ACCOUNT_FILTER} AND {TEAM_FILTER} AND {PROJECT_FILTER}"
ACCOUNTS_FILTER: Final = "$__conditionalAll(account_id IN (${account:singlequote}), $account)"


def accounts_filter(column: str) -> str:
    """Multi-account dashboards: the selected accounts, or no filter for "All"."""
    return f"$__conditionalAll({column} IN (${{account:singlequote}}), $account)"


# The account's calendar at the end of the time range. A WITH prologue: each query that
# needs "this month" starts with it and then uses the names.
CALENDAR: Final = f"""WITH
    toTimeZone($__toTime, {TZ}) AS local_now,
    toStartOfMonth(local_now) AS this_month,
    this_month - INTERVAL 1 MONTH AS last_month,
    toDayOfMonth(local_now) AS day_of_month,
    toDateTime(this_month, {TZ}) AS month_start,
    toDateTime(last_month, {TZ}) AS last_month_start,
    local_now - INTERVAL 1 MONTH AS same_time_last_month"""

# The range as dates in the account's time zone, for the daily rollup.
LOCAL_DATE_RANGE: Final = (
    f"local_date >= toDate(toTimeZone($__fromTime, {TZ})) "
    f"AND local_date <= toDate(toTimeZone($__toTime, {TZ}))"
)


# A local date as a time column: 00:00 UTC of that date. Panels of days draw their axis
# in UTC (``Board.timeseries(days=True)``), so the account's Nov 3 shows on Nov 3 for a
# viewer in any time zone, instead of at the account's midnight in the viewer's zone.
LOCAL_DAY: Final = "toDateTime(local_date, 'UTC')"


def change(current: str, previous: str) -> str:
    """Relative change from ``previous`` to ``current`` (0.25 = +25%); NULL without a base."""
    return (
        f"if({previous} = 0, NULL, "
        f"(toFloat64({current}) - toFloat64({previous})) / abs(toFloat64({previous})))"
    )


# Stripe amounts are integers in the currency's minor unit, except for zero-decimal
# currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES: Final = (
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
)  # fmt: skip


def major_units(amount: str, currency: str = "currency") -> str:
    """A Stripe minor-unit amount as a Decimal in the currency's major unit."""
    zero_decimal = ", ".join(f"'{code}'" for code in ZERO_DECIMAL_CURRENCIES)
    return (
        f"if(lower({currency}) IN ({zero_decimal}), toDecimal128({amount}, 2), "
        f"toDecimal128({amount}, 2) / 100)"
    )


# Whole hours inside the time range ($__timeFilter's [from, to], in whole seconds): the
# first hour that starts at or after `from`, up to the hour that contains `to`. Panels read
# these hours from an hourly rollup and the instants outside them (the partial hours at
# the edges, or the whole range when it is shorter) from the events, so their cost follows
# the number of hours in the range, not the number of events (docs/dashboards.md).
FIRST_WHOLE_HOUR: Final = "toStartOfHour($__fromTime + INTERVAL 3599 SECOND, 'UTC')"
END_OF_WHOLE_HOURS: Final = "toStartOfHour($__toTime, 'UTC')"
WHOLE_HOURS: Final = f"hour >= {FIRST_WHOLE_HOUR} AND hour < {END_OF_WHOLE_HOURS}"


def outside_whole_hours(column: str) -> str:
    """``column`` in the time range but not in one of its whole hours (exact complement)."""
    return (
        f"$__timeFilter({column}) AND ({column} < {FIRST_WHOLE_HOUR} "
        f"OR {column} >= greatest({FIRST_WHOLE_HOUR}, {END_OF_WHOLE_HOURS}))"
    )


MONEY: Final = "Decimal(38, 12)"
TIME: Final = "DateTime64(3, 'UTC')"


def plain(column: str, type_name: str, alias: str | None = None) -> str:
    """A rollup's SimpleAggregateFunction column as its plain type (what the plugin reads,
    and what a UNION with the events' own columns needs)."""
    return f"CAST({column} AS {type_name}) AS {alias or column}"


def runs(events: str) -> str:
    """``job_runs_current`` of the selected account, for the runs with an event matching
    ``events`` (a condition on job_run_events) only.

    The view merges the aggregate state of every run of every account before a WHERE
    applies; a dashboard asks about the runs that ended in its range, which the run events
    (partitioned by month, ordered by account) find first. Same columns as the view
    (clickhouse/schema/0004_jobs.sql), so a panel reads it the same way.
    """
    return f"""(
    SELECT
        account_id,
        run_id,
        any(team_id) AS team_id,
        any(project_id) AS project_id,
        any(job_id) AS job_id,
        any(kind) AS kind,
        argMaxMerge(state) AS status,
        min(queued_at) AS queued_at,
        min(started_at) AS started_at,
        max(finished_at) AS finished_at,
        if(status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
           AND started_at IS NOT NULL,
           dateDiff('millisecond', started_at, finished_at), NULL) AS duration_ms,
        max(error_type) AS error_type,
        max(error_message) AS error_message,
        max(last_event_at) AS last_event_at
    FROM job_runs
    WHERE {ACCOUNT_FILTER} AND run_id IN (
        SELECT run_id FROM job_run_events WHERE {ACCOUNT_FILTER} AND {events}
    )
    GROUP BY account_id, run_id
)"""


# Runs without a final state, from the runs' plain columns (no aggregate state to merge):
# a run is running once it has a start and queued before; its latest state is then the
# one the view would give (a final state outranks both).
OPEN_RUNS: Final = f"""(
    SELECT
        account_id,
        run_id,
        any(team_id) AS team_id,
        any(project_id) AS project_id,
        CAST(any(job_id) AS String) AS job_id,
        CAST(any(kind) AS String) AS kind,
        min(started_at) AS started_at,
        if(started_at IS NULL, 'queued', 'running') AS status
    FROM job_runs
    WHERE {ACCOUNT_FILTER}
    GROUP BY account_id, run_id
    HAVING max(finished_at) IS NULL
)"""
