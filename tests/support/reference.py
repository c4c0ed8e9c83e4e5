"""The reference of the ingest path, per event and simple: the oracle of the property tests.

Not shipped. Production rates with meterhouse.rating.rater.Rater and lays rows out with
meterhouse.processing.columns.ColumnBuilder; here each event is rated by ``rate`` itself
and turned into row dicts one at a time, the plainest reading of the rules. Tests build
both from the same events and compare them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any

import msgspec

from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.rating import Catalog, PriceBook, rate

Row = dict[str, Any]
TableRows = list[tuple[str, Row]]


def _owner(event: r.Event) -> Row:
    data = event.data
    return {
        "account_id": event.account_id,
        "team_id": data.team_id,
        "project_id": data.project_id,
    }


def usage_row(event: r.Event, rating: r.Rating, local_date: date) -> Row:
    data = event.data
    lines = rating.lines
    return {
        "source": event.source,
        "event_id": r.charge_id(event),
        "event_type": event.type,
        "kind": rating.kind,
        "event_time": event.time,
        "local_date": local_date,
        **_owner(event),
        "user_id": data.user_id,
        "item": rating.item,
        "provider": rating.provider,
        "job_id": getattr(data, "job_id", ""),
        "run_id": getattr(data, "run_id", ""),
        "lines.usage_type": [line.usage_type for line in lines],
        "lines.quantity": [line.quantity for line in lines],
        "lines.unit": [line.unit for line in lines],
        "lines.unit_price_credits": [line.unit_price_credits for line in lines],
        "lines.unit_price_usd": [line.unit_price_usd for line in lines],
        "lines.credits": [line.credits for line in lines],
        "lines.usd": [line.usd for line in lines],
        "credits": rating.credits,
        "usd": rating.usd,
        "priced": 1 if rating.priced else 0,
        "unpriced_reason": rating.unpriced_reason,
        "price_version": rating.price_version,
        "attributes": json.dumps(msgspec.to_builtins(data), sort_keys=True, default=str),
    }


def event_rows(event: r.Event, rating: r.Rating | None, local_date: date) -> TableRows:
    """Every row one event writes, as (table, row) pairs."""
    data = event.data
    rows: TableRows = []
    if rating is not None:
        rows.append(("usage_events", usage_row(event, rating, local_date)))
    if isinstance(data, r.JobDefinitionData):
        # Keyed like the other event tables; a materialized view keeps `jobs` up to date.
        rows.append(
            (
                "job_definition_events",
                {
                    **_owner(event),
                    "job_id": data.job_id,
                    "kind": data.kind,
                    "name": data.name,
                    "schedule": data.schedule,
                    "status": data.status,
                    "typical_duration_ms": data.typical_duration_ms,
                    "is_deleted": 1 if data.deleted else 0,
                    "event_time": event.time,
                    "source": event.source,
                    "event_id": event.id,
                },
            )
        )
    elif isinstance(data, r.JobRunData):
        rows.append(
            (
                "job_run_events",
                {
                    **_owner(event),
                    "job_id": data.job_id,
                    "run_id": data.run_id,
                    "kind": data.kind,
                    "status": data.status,
                    "status_rank": r.run_status_rank(data.status),
                    "event_time": event.time,
                    "source": event.source,
                    "event_id": event.id,
                    "error_type": data.error_type,
                    "error_message": data.error_message,
                },
            )
        )
        if data.started_at is not None and data.status != "running":
            # A final event that carries its start time also records the start, so runs
            # are complete even when the platform never sent the `running` event.
            rows.append(
                (
                    "job_run_events",
                    {
                        **rows[-1][1],
                        "status": "running",
                        "status_rank": r.run_status_rank("running"),
                        "event_time": data.started_at,
                        "event_id": f"{event.id}#started",
                        "error_type": "",
                        "error_message": "",
                    },
                )
            )
    elif isinstance(data, r.JobLogData):
        rows.append(
            (
                "job_logs",
                {
                    "log_time": event.time,
                    **_owner(event),
                    "job_id": data.job_id,
                    "run_id": data.run_id,
                    "kind": data.kind,
                    "level": data.level,
                    "message": data.message,
                    "error_type": data.error_type,
                    "error_message": data.error_message,
                    "stack_trace": data.stack_trace,
                    "source": event.source,
                    "event_id": event.id,
                },
            )
        )
    return rows


class ReferenceRater:
    """``rate`` per event, with nothing cached."""

    def __init__(self, catalog: Catalog, book: PriceBook) -> None:
        self.catalog = catalog
        self.book = book

    def __call__(self, event: r.Event, plan: str) -> r.Rating | None:
        return rate(event, plan=plan, catalog=self.catalog, book=self.book)


def reference_rows(
    accounts: AccountDirectory, rater: ReferenceRater, events: Iterable[r.Event]
) -> TableRows:
    """Every row of ``events``, event by event, with the account's plan and time zone."""
    out: TableRows = []
    for event in events:
        info = accounts.get(event.account_id)
        rating = rater(event, info.plan)
        local = event.time.astimezone(info.time_zone).date()
        out.extend(event_rows(event, rating, local))
    return out
