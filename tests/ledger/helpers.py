"""Priced usage rows for ledger tests, written the way the pipeline writes them.

Rows are built with the reference ``usage_row`` (tests/support/reference.py) from hand-made
``Rating`` values, typed as the row builder types them (``SCHEMAS``) and stored through the
real writer, so these tests do not depend on how rating prices events.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse import records as r
from meterhouse.access import tenants
from meterhouse.processing.columns import SCHEMAS
from meterhouse.store.base import Store
from tests.support.reference import usage_row

_ids = itertools.count(1)
SCALE = Decimal("1e-12")


@dataclass(frozen=True)
class Usage:
    """One priced event: lines of (usage_type, quantity, unit price in credits)."""

    at: datetime
    lines: tuple[tuple[str, Decimal, Decimal], ...]
    item: str = "gpt-4o"
    kind: str = "model"
    team: str = ""
    project: str = ""
    extra_credits: Decimal = Decimal(0)  # event total minus the sum of its lines
    priced: bool = True

    @property
    def credits(self) -> Decimal:
        return sum((q * p for _, q, p in self.lines), Decimal(0)) + self.extra_credits


def make_account(store: Store, account_id: str, time_zone: str = "UTC", **fields: str) -> None:
    tenants.create_account(store, account_id, actor="test", time_zone=time_zone, **fields)


def write_usage(store: Store, account_id: str, usages: list[Usage]) -> None:
    zone = ZoneInfo(
        str(
            store.query(
                "SELECT time_zone FROM accounts FINAL WHERE account_id = {a:String}",
                {"a": account_id},
            ).scalar()
            or "UTC"
        )
    )
    rows = []
    for usage in usages:
        event = r.Event(
            id=f"evt_{next(_ids)}",
            source="tests.ledger",
            type=r.MODEL_CALL,
            time=usage.at.astimezone(UTC),
            data=r.ModelCallData(
                model=usage.item, team_id=usage.team, project_id=usage.project, user_id="u1"
            ),
            account_id=account_id,
        )
        lines = tuple(
            r.PricedLine(
                usage_type=usage_type,
                quantity=quantity,
                unit=r.USAGE_UNITS.get(usage_type, "unit"),
                unit_price_credits=price,
                unit_price_usd=(price / 100).quantize(SCALE),
                credits=quantity * price,
                usd=(quantity * price / 100).quantize(SCALE),
            )
            for usage_type, quantity, price in usage.lines
        )
        rating = r.Rating(
            kind=usage.kind,  # type: ignore[arg-type]
            item=usage.item,
            provider="",
            lines=lines,
            credits=usage.credits,
            usd=sum((line.usd for line in lines), Decimal(0)),
            priced=usage.priced,
            unpriced_reason="" if usage.priced else "no_price",
            price_version="test",
        )
        rows.append(usage_row(event, rating, usage.at.astimezone(zone).date()))
    table = pa.Table.from_pylist(rows, schema=SCHEMAS["usage_events"])
    result = ClickHouseWriter(store).write_tables({"usage_events": table})
    assert result.ok, result.error


def usage_sum(store: Store, account_id: str, start: datetime, end: datetime) -> Decimal:
    value = store.query(
        "SELECT sum(credits) FROM usage_events WHERE account_id = {a:String} "
        "AND event_time >= {s:DateTime64(3, 'UTC')} AND event_time < {e:DateTime64(3, 'UTC')}",
        {"a": account_id, "s": start, "e": end},
    ).scalar()
    assert isinstance(value, Decimal)
    return value


def usage_insert_sql(
    account: str, at: datetime, credits: str, *, zone: str = "UTC", team: str = ""
) -> str:
    """One priced gpt-4o call as `meterhouse sql --write` takes it (tests of the CLI)."""
    local = at.astimezone(ZoneInfo(zone)).date().isoformat()
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        "INSERT INTO usage_events (source, event_id, event_type, kind, event_time, local_date, "
        "account_id, team_id, item, `lines.usage_type`, `lines.quantity`, `lines.unit`, "
        "`lines.unit_price_credits`, `lines.unit_price_usd`, `lines.credits`, `lines.usd`, "
        "credits, usd, priced) VALUES "
        f"('cli', 'e-{credits}', 'com.meterhouse.model.call', 'model', '{stamp}', '{local}', "
        f"'{account}', '{team}', 'gpt-4o', ['output'], [1000], ['token'], [{credits}/1000], "
        f"[0], [{credits}], [0], {credits}, 0, 1)"
    )
