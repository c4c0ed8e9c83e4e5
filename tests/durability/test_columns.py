"""The column builder writes the rows the reference describes, typed as the tables are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from meterhouse import records as r
from meterhouse.demo.generator import generate
from meterhouse.demo.runner import store_tenants
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import SCHEMAS, ColumnBuilder, decimal_array
from meterhouse.rating.rater import Rater
from meterhouse.store.arrow_types import arrow_type
from meterhouse.store.base import Store
from tests.support.reference import ReferenceRater, reference_rows


def _normalized(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("event_time", "log_time"):
        if isinstance(out.get(name), datetime):  # the tables keep milliseconds
            moment = out[name].astimezone(UTC)
            out[name] = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if "attributes" in out:
        out["attributes"] = json.loads(out["attributes"])
    return out


def _event_id(row: dict[str, Any]) -> str:
    return str(row["event_id"])


def _dst_events() -> list[r.Event]:
    """Model calls of a Paris account every 10 minutes across a DST change (01:00 UTC)."""
    start = datetime(2026, 3, 29, 0, 0, 30, 123456, tzinfo=UTC)
    return [
        r.Event(
            id=f"dst-{n}",
            source="s",
            type=r.MODEL_CALL,
            time=start + timedelta(minutes=10 * n),
            data=r.ModelCallData(
                model="gpt-4o", input_tokens=5, output_tokens=n, account_id="acme"
            ),
            account_id="acme",
        )
        for n in range(14)
    ]


def test_columns_equal_the_reference_for_every_event_type(migrated_store: Store) -> None:
    data = generate(datetime.now(UTC), days=3, scale=1)
    store_tenants(migrated_store, data, "test")
    events = data.events + _dst_events()
    rater = Rater.default()
    accounts = AccountDirectory(migrated_store)
    expected: dict[str, list[dict[str, Any]]] = {}
    reference = ReferenceRater(rater.catalog, rater.book)
    for table, row in reference_rows(accounts, reference, events):
        expected.setdefault(table, []).append(_normalized(row))
    built = ColumnBuilder(accounts, rater).build(events)
    assert set(built.tables) == set(expected)
    for table, rows in expected.items():
        # Model calls priced together come out grouped: compare as sets of rows.
        got = sorted((_normalized(row) for row in built.tables[table].to_pylist()), key=_event_id)
        assert got == sorted(rows, key=_event_id), table
    assert sum(built.unpriced.values()) == sum(
        1 for row in expected["usage_events"] if not row["priced"]
    )


def test_schemas_match_the_migrated_tables(migrated_store: Store) -> None:
    for table, schema in SCHEMAS.items():
        described = {
            row["name"]: row["type"]
            for row in migrated_store.query(f"DESCRIBE TABLE {table}").dicts()
        }
        for field in schema:
            assert field.name in described, f"{table}.{field.name}"
            assert arrow_type(described[field.name]) == field.type, f"{table}.{field.name}"


def test_amounts_beyond_64_bits_keep_every_digit() -> None:
    huge = 100_000_000 * 10**12 + 7  # 1e8 tokens and a bit, in units of 1e-12
    values = decimal_array([1, -5, huge, 0]).to_pylist()
    assert values == [
        Decimal("1E-12"),
        Decimal("-5E-12"),
        Decimal("100000000.000000000007"),
        Decimal(0),
    ]


def test_attributes_are_the_event_data_as_json() -> None:
    data = r.JobRunData(
        job_id="j", run_id="r", kind="asset", status="failed", duration_seconds=Decimal("1.50")
    )
    encoded = msgspec.json.Encoder(order="sorted").encode(data)
    assert json.loads(encoded) == json.loads(json.dumps(msgspec.to_builtins(data), default=str))
