"""1 Overview: balance, this month's spend and compute time, trends, last transactions."""

from __future__ import annotations

from meterhouse.dashboards import variables
from meterhouse.dashboards.grafana import CREDITS, USD, Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import (
    ACCOUNT_FILTER,
    CALENDAR,
    LOCAL_DATE_RANGE,
    TENANT_FILTER,
    TZ,
    change,
    runs,
)

UID = "meterhouse-overview"


def _consumed(until: str) -> str:
    """Credits consumed up to the instant ``until`` (a DateTime expression).

    Whole days come from the daily rollup (in the account's days), the last partial day
    from the events, so the figure is exact without scanning every event of the account.
    """
    day = f"toDate(toTimeZone({until}, {TZ}))"
    return f"""((
        SELECT sum(credits) FROM usage_daily
        WHERE {ACCOUNT_FILTER} AND local_date < {day}
    ) + (
        SELECT sum(credits) FROM usage_events
        WHERE {ACCOUNT_FILTER} AND event_time >= toDateTime({day}, {TZ})
          AND event_time <= {until}
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

# Compute time is measured on the runs themselves (finished runs' durations), so it is
# there whether or not the price book charges for job seconds.
RUNS_THIS_AND_LAST_MONTH = (
    "status_rank = 3 AND event_time >= last_month_start AND event_time <= local_now"
)
TIME_SQL = f"""{CALENDAR}
SELECT
    sumIf(duration_ms, finished_at >= month_start) / 1000 AS "This month",
    sumIf(duration_ms, finished_at < month_start AND finished_at <= same_time_last_month) / 1000
        AS "Last month, same days",
    {change('"This month"', '"Last month, same days"')} AS "Change"
FROM {runs(RUNS_THIS_AND_LAST_MONTH)}
WHERE {TENANT_FILTER}
  AND finished_at >= last_month_start AND finished_at <= local_now
"""

DAILY_SPEND_SQL = f"""SELECT
    toDateTime(local_date, {TZ}) AS time,
    kind,
    sum(credits) AS credits
FROM usage_daily
WHERE {TENANT_FILTER} AND {LOCAL_DATE_RANGE}
GROUP BY time, kind
ORDER BY time, kind
"""


def _spend_by_item(kind: str) -> str:
    return f"""SELECT
    toDateTime(local_date, {TZ}) AS time,
    item,
    sum(credits) AS credits
FROM usage_daily
WHERE {TENANT_FILTER} AND kind = '{kind}' AND {LOCAL_DATE_RANGE}
GROUP BY time, item
ORDER BY time, item
"""


TRANSACTIONS_SQL = f"""SELECT time, entry, detail, credits, usd FROM (
    SELECT
        effective_at AS time,
        concat('grant: ', kind) AS entry,
        description AS detail,
        amount AS credits,
        CAST(NULL AS Nullable(Decimal(38, 12))) AS usd
    FROM credit_grants FINAL
    WHERE {ACCOUNT_FILTER} AND voided = 0 AND $__timeFilter(effective_at)
    UNION ALL
    SELECT
        event_time AS time,
        concat(kind, ': ', item) AS entry,
        concat(team_id, ' / ', project_id, if(priced = 1, '', ' (unpriced)')) AS detail,
        -credits AS credits,
        CAST(usd AS Nullable(Decimal(38, 12))) AS usd
    FROM usage_events
    WHERE {TENANT_FILTER} AND $__timeFilter(event_time)
)
ORDER BY time DESC
LIMIT 100
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
    board.stat(
        "Current balance",
        BALANCE_SQL,
        cols=columns(Balance=Kind.NUMBER, **{"At month start": Kind.NUMBER}, Change=Kind.NUMBER),
        description="Credits left at the end of the time range: grants in force minus "
        "consumption, against the balance when this month began. Whole account (team and "
        "project filters do not apply). Computed in SQL with expiries simplified "
        "(docs/dashboards.md); the ledger's exact figure is beside it.",
        w=7,
        unit=CREDITS,
        units=change_unit,
        decimals=2,
    )
    board.prom_stat(
        "Balance (ledger)",
        'sum(meterhouse_account_balance_credits{account="$account"})',
        description="The ledger's exact balance now (grant by grant burn-down), from the "
        "meterhouse_account_balance_credits gauge of `meterhouse run`.",
        w=3,
        unit=CREDITS,
        thresholds=((None, "red"), (0.01, "green")),
    )
    board.stat(
        "Credits spent this month",
        CREDITS_SQL,
        cols=columns(
            **{"This month": Kind.NUMBER, "Last month, same days": Kind.NUMBER},
            Change=Kind.NUMBER,
        ),
        description="Credits consumed since the 1st of this month in the account's time "
        "zone, against the same days of last month.",
        w=7,
        unit=CREDITS,
        units=change_unit,
        decimals=2,
    )
    board.stat(
        "Time spent this month",
        TIME_SQL,
        cols=columns(
            **{"This month": Kind.NUMBER, "Last month, same days": Kind.NUMBER},
            Change=Kind.NUMBER,
        ),
        description="Compute time of the job runs that finished this month, against the "
        "same days of last month.",
        w=7,
        unit="s",
        units=change_unit,
    )
    board.row("Trends")
    board.timeseries(
        "Daily spend",
        DAILY_SPEND_SQL,
        cols=columns(time=Kind.TIME, kind=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day (account time zone) by usage kind: model, job, api.",
        w=24,
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="kind",
    )
    board.timeseries(
        "Spend by model",
        _spend_by_item("model"),
        cols=columns(time=Kind.TIME, item=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day by LLM model.",
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="item",
    )
    board.timeseries(
        "Spend by job kind",
        _spend_by_item("job"),
        cols=columns(time=Kind.TIME, item=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day by job kind (scheduler, asset, webhook, notification).",
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="item",
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
        ),
        description="The latest 100 credit movements in the time range: grants (+) and "
        "usage (-), newest first.",
        units={"credits": CREDITS, "usd": USD},
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
