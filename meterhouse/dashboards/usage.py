"""2 Usage statement: every priced line, like a bank statement, in credits and USD."""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import CREDITS, USD, Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import (
    LOCAL_DATE_RANGE,
    LOCAL_DAY,
    MONEY,
    TENANT_FILTER,
    TIME,
    WHOLE_HOURS,
    outside_whole_hours,
    plain,
)

UID = links.USAGE

ITEMS_SQL = (
    "SELECT DISTINCT item FROM usage_daily "
    "WHERE account_id = ${account:singlequote} AND kind IN (${kind:singlequote}) "
    "ORDER BY item"
)
KIND_FILTER = "$__conditionalAll(kind IN (${kind:singlequote}), $kind)"
ITEM_FILTER = "$__conditionalAll(item IN (${item:singlequote}), $item)"
STATEMENT_FILTER = f"{TENANT_FILTER} AND {KIND_FILTER} AND {ITEM_FILTER}"

# Whole hours from the hourly rollups, the partial hours at the edges from the events:
# the same figures as reading every event of the range (tests/dashboards/test_rollups.py).
TOTALS_SQL = f"""SELECT
    sum(credits) AS "Credits",
    sum(usd) AS "USD",
    sum(events) AS "Events",
    sum(unpriced) AS "Unpriced events"
FROM (
    SELECT {plain("credits", MONEY)}, {plain("usd", MONEY)}, {plain("events", "UInt64")},
        {plain("unpriced_events", "UInt64", "unpriced")}
    FROM usage_events_hourly
    WHERE {STATEMENT_FILTER} AND {WHOLE_HOURS}
    UNION ALL
    SELECT credits, usd, toUInt64(1) AS events, toUInt64(priced = 0) AS unpriced
    FROM usage_events
    WHERE {STATEMENT_FILTER} AND {outside_whole_hours("event_time")}
)
"""

# One line per (item, usage type, unit price): a price change inside the range shows as
# two lines, as on a bank statement. An event has one line per usage type, so counting
# lines in a group counts its events.
STATEMENT_SQL = f"""SELECT
    kind AS "Kind",
    item AS "Item",
    usage_type AS "Usage",
    unit AS "Unit",
    sum(quantity) AS "Quantity",
    unit_price_credits AS "Unit price (credits)",
    unit_price_usd AS "Unit price (USD)",
    sum(credits) AS "Credits",
    sum(usd) AS "USD",
    sum(events) AS "Events",
    min(first_event_at) AS "First",
    max(last_event_at) AS "Last"
FROM (
    SELECT kind, item, usage_type, unit, unit_price_credits, unit_price_usd,
        {plain("quantity", MONEY)}, {plain("credits", MONEY)}, {plain("usd", MONEY)},
        {plain("events", "UInt64")}, {plain("first_event_at", TIME)},
        {plain("last_event_at", TIME)}
    FROM usage_lines_hourly
    WHERE {STATEMENT_FILTER} AND {WHOLE_HOURS}
    UNION ALL
    SELECT kind, item, lines.usage_type AS usage_type, lines.unit AS unit,
        lines.unit_price_credits AS unit_price_credits,
        lines.unit_price_usd AS unit_price_usd, lines.quantity AS quantity,
        lines.credits AS credits, lines.usd AS usd, toUInt64(1) AS events,
        event_time AS first_event_at, event_time AS last_event_at
    FROM usage_events
    ARRAY JOIN lines
    WHERE {STATEMENT_FILTER} AND {outside_whole_hours("event_time")}
)
GROUP BY "Kind", "Item", "Usage", "Unit", "Unit price (credits)", "Unit price (USD)"
ORDER BY "Credits" DESC, "Kind", "Item", "Usage"
"""

DAILY_SQL = f"""SELECT
    local_date AS "Day",
    kind AS "Kind",
    item AS "Item",
    usage_type AS "Usage",
    unit AS "Unit",
    sum(quantity) AS "Quantity",
    sum(credits) AS "Credits",
    sum(usd) AS "USD",
    sum(events) AS "Events"
FROM usage_daily
WHERE {STATEMENT_FILTER} AND {LOCAL_DATE_RANGE}
GROUP BY "Day", "Kind", "Item", "Usage", "Unit"
ORDER BY "Day" DESC, "Credits" DESC, "Kind", "Item", "Usage"
"""

DAILY_USD_SQL = f"""SELECT
    {LOCAL_DAY} AS time,
    kind,
    sum(usd) AS usd
FROM usage_daily
WHERE {STATEMENT_FILTER} AND {LOCAL_DATE_RANGE}
GROUP BY time, kind
ORDER BY time, kind
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 2 Usage statement",
        "Every model call, job and API line in the time range: quantity, unit price, "
        "credits and USD, filterable by team, project, kind and item.",
        file_name="02-usage-statement.json",
    )
    variables.tenant(board)
    variables.pick_list(board, "kind", "Kind", variables.USAGE_KINDS)
    board.variables(variables.query_variable("item", "Item", ITEMS_SQL, multi=True))
    board.variable_query("item", ITEMS_SQL, columns(item=Kind.STRING))
    board.stat(
        "Totals in range",
        TOTALS_SQL,
        cols=columns(
            Credits=Kind.NUMBER,
            USD=Kind.NUMBER,
            Events=Kind.NUMBER,
            **{"Unpriced events": Kind.NUMBER},
        ),
        description="Credits and USD of the usage in the time range, the number of usage "
        "events, and how many of them no price applied to yet.",
        w=24,
        h=4,
        units={"Credits": CREDITS, "USD": USD, "Events": "short", "Unpriced events": "short"},
        decimals=2,
        links=[links.to_board("Overview: balance and budgets", links.OVERVIEW)],
    )
    board.table(
        "Statement",
        STATEMENT_SQL,
        cols=columns(
            Kind=Kind.STRING,
            Item=Kind.STRING,
            Usage=Kind.STRING,
            Unit=Kind.STRING,
            Quantity=Kind.NUMBER,
            **{"Unit price (credits)": Kind.NUMBER, "Unit price (USD)": Kind.NUMBER},
            Credits=Kind.NUMBER,
            USD=Kind.NUMBER,
            Events=Kind.NUMBER,
            First=Kind.TIME,
            Last=Kind.TIME,
        ),
        description="One line per item, usage type and unit price in the time range. Use "
        "the column filters (funnel icon) to narrow it down.",
        units={
            "Credits": CREDITS,
            "USD": USD,
            "Unit price (credits)": CREDITS,
            "Unit price (USD)": USD,
        },
        h=12,
    )
    board.timeseries(
        "USD per day",
        DAILY_USD_SQL,
        cols=columns(time=Kind.TIME, kind=Kind.STRING, usd=Kind.NUMBER),
        description="Dollar value of the usage per day (account time zone), by kind.",
        w=24,
        unit=USD,
        bars=True,
        stacked=True,
        series_label="kind",
        days=True,
    )
    board.table(
        "Daily lines",
        DAILY_SQL,
        cols=columns(
            Day=Kind.TIME,
            Kind=Kind.STRING,
            Item=Kind.STRING,
            Usage=Kind.STRING,
            Unit=Kind.STRING,
            Quantity=Kind.NUMBER,
            Credits=Kind.NUMBER,
            USD=Kind.NUMBER,
            Events=Kind.NUMBER,
        ),
        description="The same usage per day in the account's time zone (from the daily "
        "rollup), newest first.",
        units={"Credits": CREDITS, "USD": USD},
        h=12,
    )
    return board
