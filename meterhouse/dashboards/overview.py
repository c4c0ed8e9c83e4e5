"""1 Overview: balance, this month's spend and compute time, trends, last transactions."""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import CREDITS, USD, Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import (
    ACCOUNT_FILTER,
    CALENDAR,
    LOCAL_DATE_RANGE,
    LOCAL_DAY,
    MONEY,
    TENANT_FILTER,
    TZ,
    WHOLE_HOURS,
    change,
    outside_whole_hours,
    plain,
)

UID = links.OVERVIEW


def _consumed(until: str) -> str:
    """Credits consumed up to the instant ``until`` (a DateTime expression).

    Whole days from the daily rollup (in the account's days), the whole hours of the last
    day from the hourly rollup, the last partial hour from the events: exact without
    reading more than an hour of events.
    """
    day = f"toDate(toTimeZone({until}, {TZ}))"
    hour = f"toStartOfHour({until}, 'UTC')"
    return f"""((
        SELECT sum(credits) FROM usage_daily
        WHERE {ACCOUNT_FILTER} AND local_date < {day}
    ) + (
        SELECT CAST(sum(credits) AS {MONEY}) FROM usage_events_hourly
        WHERE {ACCOUNT_FILTER} AND local_date = {day}
          AND hour >= {hour} - INTERVAL 25 HOUR AND hour < {hour}
    ) + (
        SELECT sum(credits) FROM usage_events
        WHERE {ACCOUNT_FILTER} AND local_date = {day}
          AND event_time >= {hour} AND event_time <= {until}
    ))"""


def _grants(until: str) -> str:
    """(credits in force, credits of expired grants, last expiry) at the instant ``until``."""
    return f"""(
        SELECT tuple(
            sumIf(amount, effective_at <= {until}
                          AND (expires_at IS NULL OR expires_at > {until})),
            sumIf(amount, expires_at <= {until}),
            coalesce(maxIf(expires_at, expires_at <= {until}), toDateTime64(0, 3, 'UTC')))
        FROM credit_grants FINAL
        WHERE {ACCOUNT_FILTER} AND voided = 0
    )"""


def _balance(at: str, name: str) -> str:
    """WITH items computing ``{name}``, the balance at the instant ``at``.

    balance = grants in force - (consumed - what expired grants paid for). Expired grants
    are taken to have paid for the consumption before they expired, up to their amount
    (the ledger burns the soonest-expiring grant first): docs/dashboards.md.
    """
    return f"""{_grants(at)} AS {name}_grants,
    {_consumed(at)} AS {name}_consumed,
    {_consumed(f"tupleElement({name}_grants, 3)")} AS {name}_consumed_by_expiry,
    tupleElement({name}_grants, 1) - ({name}_consumed
        - least(tupleElement({name}_grants, 2), {name}_consumed_by_expiry)) AS {name}"""


# The balance in SQL, with expiries simplified (docs/dashboards.md): not a panel (the
# ledger's figure is), but the anchor of the running balance of "Last transactions", and
# tests/dashboards compare it with the ledger where the simplification holds.
BALANCE_SQL = f"""{CALENDAR},
    {_balance("local_now", "balance_now")},
    {_balance("month_start", "balance_month_start")}
SELECT
    balance_now AS "Balance",
    balance_month_start AS "At month start",
    {change("balance_now", "balance_month_start")} AS "Change"
"""

CREDITS_SQL = f"""{CALENDAR}
SELECT
    sumIf(credits, local_date >= this_month) AS "This month",
    sumIf(credits, local_date < this_month AND toDayOfMonth(local_date) <= day_of_month)
        AS "Last month, same days",
    {change('"This month"', '"Last month, same days"')} AS "Change"
FROM usage_daily
WHERE {TENANT_FILTER}
  AND local_date >= last_month AND local_date <= toDate(local_now)
"""

# Compute time as the runs' final events report it (the compute seconds each finished run
# is charged for: usage lines of kind job, kept whether or not a price applies), from the
# daily rollup like the credits beside it: its cost does not grow with the number of runs.
TIME_SQL = f"""{CALENDAR}
SELECT
    sumIf(quantity, local_date >= this_month) AS "This month",
    sumIf(quantity, local_date < this_month AND toDayOfMonth(local_date) <= day_of_month)
        AS "Last month, same days",
    {change('"This month"', '"Last month, same days"')} AS "Change"
FROM usage_daily
WHERE {TENANT_FILTER} AND kind = 'job' AND usage_type = 'compute_seconds'
  AND local_date >= last_month AND local_date <= toDate(local_now)
"""

DAILY_SPEND_SQL = f"""SELECT
    {LOCAL_DAY} AS time,
    kind,
    sum(credits) AS credits
FROM usage_daily
WHERE {TENANT_FILTER} AND {LOCAL_DATE_RANGE}
GROUP BY time, kind
ORDER BY time, kind
"""


def _spend_by_item(kind: str) -> str:
    return f"""SELECT
    {LOCAL_DAY} AS time,
    item,
    sum(credits) AS credits
FROM usage_daily
WHERE {TENANT_FILTER} AND kind = '{kind}' AND {LOCAL_DATE_RANGE}
GROUP BY time, item
ORDER BY time, item
"""


# Usage per hour, item and scope (whole hours from the rollup, the edges from events),
# and grants: the account's credit movements in the range. The running balance counts
# back from the balance at the end of the range, so it is the whole account's (team and
# project filters do not apply here). Expired remainders of grants are not rows of their
# own: the balance before an expiry shows them.
MOVEMENTS = f"""(
    SELECT
        toDateTime64(effective_at, 3, 'UTC') AS time,
        concat('grant: ', kind) AS entry,
        description AS detail,
        amount AS credits,
        CAST(NULL AS Nullable({MONEY})) AS usd
    FROM credit_grants FINAL
    WHERE {ACCOUNT_FILTER} AND voided = 0 AND $__timeFilter(effective_at)
    UNION ALL
    SELECT
        toDateTime64(hour, 3, 'UTC') AS time,
        concat(kind, ': ', item) AS entry,
        concat(toString(sum(events)), ' events', if(team_id = '', '', concat(', ', team_id)),
               if(project_id = '', '', concat(' / ', project_id)),
               if(sum(unpriced) = 0, '', concat(', ', toString(sum(unpriced)), ' unpriced')))
            AS detail,
        -sum(credits) AS credits,
        CAST(sum(usd) AS Nullable({MONEY})) AS usd
    FROM (
        SELECT hour, kind, item, team_id, project_id, {plain("credits", MONEY)},
            {plain("usd", MONEY)}, {plain("events", "UInt64")},
            {plain("unpriced_events", "UInt64", "unpriced")}
        FROM usage_events_hourly
        WHERE {ACCOUNT_FILTER} AND {WHOLE_HOURS}
        UNION ALL
        SELECT toStartOfHour(event_time, 'UTC') AS hour, kind, item, team_id, project_id,
            credits, usd, toUInt64(1) AS events, toUInt64(priced = 0) AS unpriced
        FROM usage_events
        WHERE {ACCOUNT_FILTER} AND {outside_whole_hours("event_time")}
    )
    GROUP BY hour, kind, item, team_id, project_id
)"""

TRANSACTIONS_SQL = f"""WITH
    toTimeZone($__toTime, {TZ}) AS local_now,
    {_balance("local_now", "closing")}
SELECT time, entry, detail, credits, usd, balance FROM (
    SELECT
        time, entry, detail, credits, usd,
        closing - (sum(credits) OVER (ORDER BY time DESC, entry, detail
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - credits) AS balance
    FROM {MOVEMENTS}
)
ORDER BY time DESC, entry, detail
LIMIT 100
"""

# Budgets of this month (a month's own budget replaces the standing one), with what the
# scope used this month and the forecast at this month's run rate, as
# meterhouse/ledger/budgets.py computes them: used / elapsed share of the month, the
# elapsed time counted as at least one day.
BUDGETS_SQL = f"""{CALENDAR},
    toStartOfHour(local_now, 'UTC') AS this_hour,
    (
        SELECT groupArray(tuple(team_id, project_id, used)) FROM (
            SELECT team_id, project_id, sum(credits) AS used FROM (
                SELECT team_id, project_id, credits FROM usage_daily
                WHERE {ACCOUNT_FILTER} AND local_date >= this_month
                  AND local_date < toDate(local_now)
                UNION ALL
                SELECT team_id, project_id, {plain("credits", MONEY)} FROM usage_events_hourly
                WHERE {ACCOUNT_FILTER} AND local_date = toDate(local_now)
                  AND hour >= this_hour - INTERVAL 25 HOUR AND hour < this_hour
                UNION ALL
                SELECT team_id, project_id, credits FROM usage_events
                WHERE {ACCOUNT_FILTER} AND local_date = toDate(local_now)
                  AND event_time >= this_hour AND event_time <= local_now
            )
            GROUP BY team_id, project_id
        )
    ) AS used_by_scope,
    greatest(dateDiff('second', month_start, local_now), 86400) AS elapsed_seconds,
    dateDiff('second', month_start, toDateTime(this_month + INTERVAL 1 MONTH, {TZ}))
        AS month_seconds
SELECT
    scope AS "Scope",
    scope_id AS "For",
    amount AS "Budget",
    arraySum(arrayMap(
        u -> if(scope = 'account' OR (scope = 'team' AND u.1 = scope_id)
                OR (scope = 'project' AND u.2 = scope_id), u.3, toDecimal128(0, 12)),
        used_by_scope)) AS "Used",
    toFloat64("Used") / toFloat64(amount) AS "Used %",
    toFloat64("Used") * month_seconds / elapsed_seconds AS "Forecast",
    "Forecast" / toFloat64(amount) AS "Forecast %",
    arrayStringConcat(arrayMap(t -> concat(toString(t), '%'),
        arrayFilter(t -> "Forecast %" * 100 >= t, thresholds)), ', ') AS "Forecast crosses"
FROM (
    SELECT scope, scope_id, argMax(b.amount, b.month) AS amount,
        argMax(b.thresholds, b.month) AS thresholds
    FROM budgets AS b FINAL
    WHERE {ACCOUNT_FILTER} AND b.month IN (this_month, toDate('1970-01-01'))
    GROUP BY scope, scope_id
    HAVING amount > 0
)
ORDER BY "Forecast %" DESC, "Scope", "For"
"""


NOTIFICATIONS_SQL = f"""SELECT
    max(at) AS time,
    alert,
    status,
    concat(any(channel_type), ' ', channel_id) AS channel,
    argMax(outcome, at) AS outcome,
    max(attempt) AS attempts,
    argMax(response_code, at) AS code,
    argMax(error, at) AS error
FROM notifications
WHERE {ACCOUNT_FILTER} AND $__timeFilter(at)
GROUP BY delivery_id, alert, status, channel_id
ORDER BY time DESC
LIMIT 50
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 1 Overview",
        "Balance, credits and compute time this month (in the account's time zone) against "
        "last month, spend trends, and the latest credit movements.",
        file_name="01-overview.json",
    )
    variables.tenant(board)
    change_unit = {"Change": "percentunit"}
    board.prom_stat(
        "Balance",
        'sum(meterhouse_account_balance_credits{account="$account"})',
        description="Credits left now: the ledger's balance (grant by grant burn-down, "
        "expiries included), from the meterhouse_account_balance_credits gauge of "
        "`meterhouse run`. Red below zero. Whole account.",
        w=4,
        unit=CREDITS,
        thresholds=((None, "red"), (0, "green")),
    )
    board.stat(
        "Credits spent this month",
        CREDITS_SQL,
        cols=columns(
            **{"This month": Kind.NUMBER, "Last month, same days": Kind.NUMBER},
            Change=Kind.NUMBER,
        ),
        description="Credits consumed since the 1st of this month in the account's time "
        "zone, against the same days of last month. Click for the usage statement.",
        w=10,
        unit=CREDITS,
        units=change_unit,
        decimals=2,
        links=[links.to_board("Usage statement", links.USAGE)],
    )
    board.stat(
        "Time spent this month",
        TIME_SQL,
        cols=columns(
            **{"This month": Kind.NUMBER, "Last month, same days": Kind.NUMBER},
            Change=Kind.NUMBER,
        ),
        description="Compute time of the job runs that finished this month (the seconds "
        "their final events report, as charged), against the same days of last month. "
        "Click for the jobs.",
        w=10,
        unit="s",
        units=change_unit,
        links=[links.to_board("Jobs", links.JOBS)],
    )
    board.table(
        "Budgets this month",
        BUDGETS_SQL,
        cols=columns(
            Scope=Kind.STRING,
            For=Kind.STRING,
            Budget=Kind.NUMBER,
            Used=Kind.NUMBER,
            **{"Used %": Kind.NUMBER},
            Forecast=Kind.NUMBER,
            **{"Forecast %": Kind.NUMBER, "Forecast crosses": Kind.STRING},
        ),
        description="Each budget of this month (account, team or project; `meterhouse "
        "budgets`): credits used so far, and the forecast for the whole month at this "
        "month's run rate, against the budget. Orange from 80%, red from 100%; the last "
        "column lists the budget's alert thresholds the forecast reaches.",
        units={
            "Budget": CREDITS,
            "Used": CREDITS,
            "Forecast": CREDITS,
            "Used %": "percentunit",
            "Forecast %": "percentunit",
        },
        colors={
            "Used %": ((None, "green"), (0.8, "orange"), (1, "red")),
            "Forecast %": ((None, "green"), (0.8, "orange"), (1, "red")),
        },
        h=6,
    )
    board.row("Trends")
    board.timeseries(
        "Daily spend",
        DAILY_SPEND_SQL,
        cols=columns(time=Kind.TIME, kind=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day (the account's days) by usage kind: model, job, api.",
        w=24,
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="kind",
        days=True,
        links=[links.to_board("Usage statement", links.USAGE)],
    )
    board.timeseries(
        "Spend by model",
        _spend_by_item("model"),
        cols=columns(time=Kind.TIME, item=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day (the account's days) by LLM model.",
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="item",
        days=True,
        links=[links.to_board("Models", links.MODELS, ("account",))],
    )
    board.timeseries(
        "Spend by job kind",
        _spend_by_item("job"),
        cols=columns(time=Kind.TIME, item=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day (the account's days) by job kind (scheduler, asset, "
        "webhook, notification).",
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="item",
        days=True,
        links=[links.to_board("Jobs", links.JOBS)],
    )
    board.row("Transactions")
    board.table(
        "Last transactions",
        TRANSACTIONS_SQL,
        cols=columns(
            time=Kind.TIME,
            entry=Kind.STRING,
            detail=Kind.STRING,
            credits=Kind.NUMBER,
            usd=Kind.NUMBER,
            balance=Kind.NUMBER,
        ),
        description="The latest 100 credit movements in the time range, newest first: "
        "grants (+) and usage (-) per hour, item, team and project, with the account's "
        "balance after each (counted back from the balance at the end of the range; "
        "expired remainders of grants are not rows, docs/dashboards.md). Click an entry "
        "for the usage statement.",
        units={"credits": CREDITS, "usd": USD, "balance": CREDITS},
        colors={"balance": ((None, "red"), (0, "green"))},
        cell_links={"entry": links.to_board("Usage statement", links.USAGE)},
        h=12,
    )
    board.table(
        "Notifications sent",
        NOTIFICATIONS_SQL,
        cols=columns(
            time=Kind.TIME,
            alert=Kind.STRING,
            status=Kind.STRING,
            channel=Kind.STRING,
            outcome=Kind.STRING,
            attempts=Kind.NUMBER,
            code=Kind.NUMBER,
            error=Kind.STRING,
        ),
        description="Alert notifications delivered to the account's channels in the time "
        "range, one row per delivery with its latest attempt: sent, retrying, dead (given "
        "up; the channel needs fixing) or failed (a test). `meterhouse notify log` shows "
        "every attempt (docs/alerts.md).",
        w=24,
        h=8,
    )
    return board
