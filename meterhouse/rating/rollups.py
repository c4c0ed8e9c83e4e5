"""The rollups materialized views keep from usage_events, as reprice rebuilds and checks them.

Each view (clickhouse/schema/0002_usage.sql, 0070_dashboard_rollups.sql) adds its rows on
insert; deleting from usage_events subtracts nothing. So after reprice replaces rows it
deletes an account's rollup rows for the range (by ``local_date``, in every key) and
inserts a fresh aggregation, written here with the view's own SELECT, then compares each
rollup with a fresh aggregation key by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Rollup:
    table: str
    key: tuple[str, ...]
    # measure -> how rows of one key combine when read (sum, min or max)
    measures: tuple[tuple[str, str], ...]
    # The view's aggregation; ``{range}`` is the WHERE condition on usage_events.
    select: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key, *(name for name, _ in self.measures))

    def read(self, where: str) -> str:
        """The rollup's rows merged per key, in the order of ``columns``."""
        measures = ", ".join(f"{how}({name}) AS {name}" for name, how in self.measures)
        key = ", ".join(self.key)
        return f"SELECT {key}, {measures} FROM {self.table} WHERE {where} GROUP BY {key}"


USAGE_DAILY: Final = Rollup(
    "usage_daily",
    (
        "account_id",
        "team_id",
        "project_id",
        "local_date",
        "kind",
        "item",
        "usage_type",
        "unit",
    ),
    (("quantity", "sum"), ("credits", "sum"), ("usd", "sum"), ("events", "sum")),
    """
SELECT
    account_id,
    team_id,
    project_id,
    local_date,
    kind,
    item,
    lines.usage_type AS usage_type,
    lines.unit AS unit,
    sum(lines.quantity) AS quantity,
    sum(lines.credits) AS credits,
    sum(lines.usd) AS usd,
    count() AS events
FROM usage_events
ARRAY JOIN lines
WHERE {range}
GROUP BY account_id, team_id, project_id, local_date, kind, item, usage_type, unit
""",
)

USAGE_LINES_HOURLY: Final = Rollup(
    "usage_lines_hourly",
    (
        "account_id",
        "hour",
        "local_date",
        "kind",
        "item",
        "usage_type",
        "unit",
        "unit_price_credits",
        "unit_price_usd",
        "team_id",
        "project_id",
    ),
    (
        ("quantity", "sum"),
        ("credits", "sum"),
        ("usd", "sum"),
        ("events", "sum"),
        ("first_event_at", "min"),
        ("last_event_at", "max"),
    ),
    """
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date,
    kind,
    item,
    lines.usage_type AS usage_type,
    lines.unit AS unit,
    lines.unit_price_credits AS unit_price_credits,
    lines.unit_price_usd AS unit_price_usd,
    team_id,
    project_id,
    sum(lines.quantity) AS quantity,
    sum(lines.credits) AS credits,
    sum(lines.usd) AS usd,
    count() AS events,
    min(event_time) AS first_event_at,
    max(event_time) AS last_event_at
FROM usage_events
ARRAY JOIN lines
WHERE {range}
GROUP BY account_id, hour, local_date, kind, item, usage_type, unit, unit_price_credits,
         unit_price_usd, team_id, project_id
""",
)

USAGE_EVENTS_HOURLY: Final = Rollup(
    "usage_events_hourly",
    ("account_id", "hour", "local_date", "kind", "item", "team_id", "project_id"),
    (("credits", "sum"), ("usd", "sum"), ("events", "sum"), ("unpriced_events", "sum")),
    """
SELECT
    account_id,
    toStartOfHour(toDateTime(event_time, 'UTC')) AS hour,
    local_date,
    kind,
    item,
    team_id,
    project_id,
    sum(credits) AS credits,
    sum(usd) AS usd,
    count() AS events,
    countIf(priced = 0) AS unpriced_events
FROM usage_events
WHERE {range}
GROUP BY account_id, hour, local_date, kind, item, team_id, project_id
""",
)

USAGE_ROLLUPS: Final = (USAGE_DAILY, USAGE_LINES_HOURLY, USAGE_EVENTS_HOURLY)
