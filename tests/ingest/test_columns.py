"""The column builder writes the rows the reference describes, typed as the tables are."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhouse import records as r
from meterhouse.access.tenants import create_account
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


# -- property: the shipped path equals the reference on any mix of events ------------------

ACCOUNTS = {
    "paris": ("Europe/Paris", "pro"),
    "tokyo": ("Asia/Tokyo", "free"),
    "ny": ("America/New_York", "enterprise"),
}
T0 = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # a DST change in Paris a day later
MODELS = (("gpt-4o", "openai"), ("gpt-4o-mini", ""), ("claude-sonnet-4-20250514", "anthropic"))
MODELS += (("no-such-model-7b", ""), ("gemini-2.5-flash", "google"))


@st.composite
def _event(draw: st.DrawFn, number: int) -> r.Event:
    account = draw(st.sampled_from(sorted(ACCOUNTS)))
    at = T0 + timedelta(
        seconds=draw(st.integers(0, 3 * 86_400)), microseconds=draw(st.integers(0, 999_999))
    )
    owner = {
        "team_id": draw(st.sampled_from(("", "ml"))),
        "user_id": draw(st.sampled_from(("", "ann"))),
    }
    kind = draw(st.sampled_from(r.EVENT_TYPES))
    run = {
        "job_id": "j",
        "run_id": f"run-{draw(st.integers(0, 3))}",
        "kind": draw(st.sampled_from(r.JOB_KINDS)),
    }
    data: r.EventData
    if kind == r.MODEL_CALL:
        model, provider = draw(st.sampled_from(MODELS))
        tokens = draw(st.integers(0, 300_000))
        cached = draw(st.integers(0, tokens))
        output = draw(st.integers(0, 5000))
        data = r.ModelCallData(
            model=model, provider=provider, input_tokens=tokens, cache_read_tokens=cached,
            output_tokens=output, reasoning_tokens=draw(st.integers(0, output)), **owner,
        )  # fmt: skip
    elif kind == r.JOB_RUN:
        status = draw(st.sampled_from(r.RUN_STATUSES))
        seconds = draw(
            st.one_of(st.none(), st.decimals(0, 90_000, places=draw(st.integers(0, 14))))
        )
        started = at - timedelta(seconds=draw(st.integers(0, 600))) if draw(st.booleans()) else None
        data = r.JobRunData(
            status=status, duration_seconds=seconds, started_at=started, **run, **owner
        )
    elif kind == r.JOB_LOG:
        data = r.JobLogData(level="info", message=f"line {number}", **run, **owner)
    elif kind == r.JOB_DEFINITION:
        data = r.JobDefinitionData(job_id="j", kind="asset", name="nightly", **owner)
    else:
        data = r.ApiCallData(route=draw(st.sampled_from(("/v1/chat", "/v1/query"))), **owner)
    data = msgspec.structs.replace(data, account_id=account)
    # Ids repeat now and then: the writer keeps the first, so the order must be the request's.
    event_id = f"e{draw(st.integers(0, 40)) if draw(st.booleans()) else number}"
    return r.Event(id=event_id, source="s", type=kind, time=at, data=data, account_id=account)


@st.composite
def _batches(draw: st.DrawFn) -> list[r.Event]:
    count = draw(st.integers(1, 40))
    return [draw(_event(number)) for number in range(count)]


@pytest.fixture(scope="module")
def accounts_store(module_store: Store) -> Store:
    for account, (zone, plan) in ACCOUNTS.items():
        create_account(module_store, account, actor="test", time_zone=zone, plan=plan)
    return module_store


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=_batches())
def test_shipped_rows_equal_the_reference_rows(
    accounts_store: Store, events: list[r.Event]
) -> None:
    """Same tables, same rows in the same order (usage rows keep the request's order, so
    the writer drops the same repeats), same unpriced counts."""
    rater = _shipped()
    accounts = AccountDirectory(accounts_store)
    expected: dict[str, list[dict[str, Any]]] = {}
    for table, row in reference_rows(accounts, ReferenceRater(rater.catalog, rater.book), events):
        expected.setdefault(table, []).append(_normalized(row))
    built = ColumnBuilder(accounts, rater).build(events)
    got = {
        table: [_normalized(row) for row in rows.to_pylist()]
        for table, rows in built.tables.items()
    }
    assert got == expected
    unpriced = Counter(
        (row["kind"], row["unpriced_reason"])
        for row in expected.get("usage_events", [])
        if not row["priced"]
    )
    assert built.unpriced == unpriced


@cache
def _shipped() -> Rater:
    return Rater.default()
