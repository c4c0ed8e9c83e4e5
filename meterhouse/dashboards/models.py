"""5 Models: the LLM catalog with its prices, and each model's usage and spend."""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import CREDITS, USD, Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import ACCOUNTS_FILTER, LOCAL_DAY

UID = links.MODELS

# The price in force at the end of the time range, one row per model.
CURRENT_PRICES = """(
    SELECT
        provider,
        model_id,
        argMax(model_name, effective_from) AS model_name,
        argMax(input_mtok, effective_from) AS input_mtok,
        argMax(output_mtok, effective_from) AS output_mtok,
        argMax(cache_read_mtok, effective_from) AS cache_read_mtok,
        argMax(cache_write_mtok, effective_from) AS cache_write_mtok,
        argMax(context_window, effective_from) AS context_window,
        max(effective_from) AS price_since,
        argMax(catalog_version, effective_from) AS catalog_version
    FROM model_prices FINAL
    WHERE effective_from <= $__toTime AND (effective_to IS NULL OR effective_to > $__toTime)
    GROUP BY provider, model_id
)"""

# Usage is summed over every account selected; days are the accounts' own local days, so
# the range is applied to local dates as UTC dates ($__dateFilter).
USAGE = f"""(
    SELECT
        item,
        sumIf(events, usage_type = 'input') AS calls,
        sumIf(quantity, usage_type = 'input') AS input_tokens,
        sumIf(quantity, usage_type = 'output') AS output_tokens,
        sum(credits) AS credits,
        sum(usd) AS usd
    FROM usage_daily
    WHERE kind = 'model' AND {ACCOUNTS_FILTER} AND $__dateFilter(local_date)
    GROUP BY item
)"""

CATALOG_SQL = f"""SELECT
    provider AS "Provider",
    model_id AS "Model",
    model_name AS "Name",
    input_mtok AS "Input $/Mtok",
    output_mtok AS "Output $/Mtok",
    cache_read_mtok AS "Cache read $/Mtok",
    cache_write_mtok AS "Cache write $/Mtok",
    context_window AS "Context window",
    price_since AS "Price since",
    catalog_version AS "Catalog"
FROM {CURRENT_PRICES}
ORDER BY "Provider", "Model"
"""

USAGE_SQL = f"""SELECT
    u.item AS "Model",
    p.provider AS "Provider",
    u.calls AS "Calls",
    u.input_tokens AS "Input tokens",
    u.output_tokens AS "Output tokens",
    u.credits AS "Credits",
    u.usd AS "USD",
    p.input_mtok AS "Input $/Mtok",
    p.output_mtok AS "Output $/Mtok",
    if(p.model_id = '', 'not in catalog', '') AS "Note"
FROM {USAGE} AS u
LEFT JOIN {CURRENT_PRICES} AS p ON p.model_id = u.item
ORDER BY "Credits" DESC, "Calls" DESC
"""

SPEND_SQL = f"""SELECT
    {LOCAL_DAY} AS time,
    item,
    sum(credits) AS credits
FROM usage_daily
WHERE kind = 'model' AND {ACCOUNTS_FILTER} AND $__dateFilter(local_date)
GROUP BY time, item
ORDER BY time, item
"""

TOKENS_SQL = f"""SELECT
    {LOCAL_DAY} AS time,
    item,
    sum(quantity) AS tokens
FROM usage_daily
WHERE kind = 'model' AND unit = 'token' AND {ACCOUNTS_FILTER} AND $__dateFilter(local_date)
GROUP BY time, item
ORDER BY time, item
"""

UNPRICED_SQL = f"""SELECT
    item AS "Model",
    provider AS "Provider",
    unpriced_reason AS "Reason",
    count() AS "Events",
    max(event_time) AS "Last seen"
FROM usage_events
WHERE kind = 'model' AND priced = 0 AND {ACCOUNTS_FILTER} AND $__timeFilter(event_time)
GROUP BY "Model", "Provider", "Reason"
ORDER BY "Events" DESC
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 5 Models",
        "The catalog of LLM models with the prices in force, and what each model was used "
        "for: calls, tokens, credits and USD, across the selected accounts.",
        file_name="05-models.json",
    )
    variables.accounts(board)
    mtok = {c: USD for c in ("Input $/Mtok", "Output $/Mtok")}
    board.table(
        "Usage and spend by model",
        USAGE_SQL,
        cols=columns(
            Model=Kind.STRING,
            Provider=Kind.STRING,
            Calls=Kind.NUMBER,
            **{"Input tokens": Kind.NUMBER, "Output tokens": Kind.NUMBER},
            Credits=Kind.NUMBER,
            USD=Kind.NUMBER,
            **{"Input $/Mtok": Kind.NUMBER, "Output $/Mtok": Kind.NUMBER},
            Note=Kind.STRING,
        ),
        description="Per model in the time range: calls, tokens, credits and USD, with the "
        "catalog price per million tokens. Click a model for its lines in the usage "
        "statement (of the first selected account).",
        cell_links={
            "Model": links.to_board(
                "Usage statement of this model",
                links.USAGE,
                ("account",),
                {"kind": "model", "item": "${__data.fields.Model}"},
            )
        },
        units={"Credits": CREDITS, "USD": USD, "Input tokens": "short", "Output tokens": "short"}
        | mtok,
        h=9,
    )
    board.timeseries(
        "Credits by model",
        SPEND_SQL,
        cols=columns(time=Kind.TIME, item=Kind.STRING, credits=Kind.NUMBER),
        description="Credits per day by model.",
        unit=CREDITS,
        bars=True,
        stacked=True,
        series_label="item",
        days=True,
    )
    board.timeseries(
        "Tokens by model",
        TOKENS_SQL,
        cols=columns(time=Kind.TIME, item=Kind.STRING, tokens=Kind.NUMBER),
        description="Input, output and cache tokens per day by model.",
        unit="short",
        bars=True,
        stacked=True,
        series_label="item",
        days=True,
    )
    board.table(
        "Unpriced model calls",
        UNPRICED_SQL,
        cols=columns(
            Model=Kind.STRING,
            Provider=Kind.STRING,
            Reason=Kind.STRING,
            Events=Kind.NUMBER,
            **{"Last seen": Kind.TIME},
        ),
        description="Calls no price applied to (model not in the catalog or price book). "
        "They are stored at zero credits until they are re-rated.",
        h=7,
    )
    board.table(
        "Model catalog",
        CATALOG_SQL,
        cols=columns(
            Provider=Kind.STRING,
            Model=Kind.STRING,
            Name=Kind.STRING,
            **{
                "Input $/Mtok": Kind.NUMBER,
                "Output $/Mtok": Kind.NUMBER,
                "Cache read $/Mtok": Kind.NUMBER,
                "Cache write $/Mtok": Kind.NUMBER,
                "Context window": Kind.NUMBER,
                "Price since": Kind.TIME,
            },
            Catalog=Kind.STRING,
        ),
        description="Every model of the catalog with its price in force at the end of the "
        "time range, in USD per million tokens.",
        units={"Cache read $/Mtok": USD, "Cache write $/Mtok": USD, "Context window": "short"}
        | mtok,
        h=14,
    )
    return board
