"""`reprice`: re-rating stored usage replaces exactly the account's range, to the last digit."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from meterhouse import records as r
from meterhouse.access.tenants import create_account
from meterhouse.errors import MeterhouseError
from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.rating.rater import Rater
from meterhouse.rating.reprice import RepriceError, reprice
from meterhouse.rating.rollups import USAGE_DAILY, USAGE_ROLLUPS, Rollup
from meterhouse.store.base import Store
from tests.rating.helpers import TEST_BOOK
from tests.support.write_path import write_events

PARIS, OTHER = "paris", "other"
START, END = date(2026, 11, 2), date(2026, 11, 5)  # local dates [Nov 2, Nov 5)
ACTOR = "test:ops"
BOOK_V2 = (
    TEST_BOOK.replace('version = "test-1"', 'version = "test-2"')
    .replace('[plans.pro]\ncredits_per_usd = "110"', '[plans.pro]\ncredits_per_usd = "150"')
    .replace('asset = "0.05"', 'asset = "0.07"')
)
# Account and range, for the checks below; event_time is not bounded here on purpose.
IN_RANGE = "account_id = {a:String} AND local_date >= {s:Date} AND local_date < {e:Date}"
OUT_OF_RANGE = f"NOT ({IN_RANGE})"


@pytest.fixture
def db(migrated_store: Store) -> Store:
    return migrated_store


@pytest.fixture
def any_db(migrated_any_store: Store) -> Store:
    """The same test on the embedded engine and through a ClickHouse server's HTTP API."""
    return migrated_any_store


@pytest.fixture(scope="module")
def book_v2() -> PriceBook:
    return PriceBook.parse(BOOK_V2, source="book_v2.toml")


def usage_events_for(account: str) -> list[r.Event]:
    """Six UTC days of model calls, job runs and API calls, at hours that cross midnight
    in Paris (23:30 UTC is the next local day there)."""
    events: list[r.Event] = []
    for day in range(1, 7):
        for hour in (0, 9, 15, 23):
            at = datetime(2026, 11, day, hour, 30, tzinfo=UTC)
            n = len(events)
            team = f"team{n % 2}"
            data: r.EventData
            if n % 4 == 0:
                data = r.ModelCallData(
                    team_id=team, model="gpt-4o", input_tokens=1200 + n, output_tokens=300
                )
            elif n % 4 == 1:
                data = r.ModelCallData(
                    team_id=team,
                    model="claude-sonnet-4",
                    input_tokens=5000,
                    cache_read_tokens=1000 + n,
                    output_tokens=700,
                )
            elif n % 4 == 2:
                data = msgspec.convert(
                    {
                        "team_id": team,
                        "job_id": "j1",
                        "run_id": f"run{n}",
                        "kind": "asset",
                        "status": "succeeded",
                        "duration_seconds": f"{10 + n}.25",
                    },
                    r.JobRunData,
                )
            else:
                data = r.ApiCallData(team_id=team, route="/v1/things")
            event_type = {
                r.ModelCallData: r.MODEL_CALL,
                r.JobRunData: r.JOB_RUN,
                r.ApiCallData: r.API_CALL,
            }[type(data)]
            events.append(
                r.Event(
                    id=f"{account}-{n}",
                    source="test",
                    type=event_type,
                    time=at,
                    data=data,
                    account_id=account,
                )
            )
    return events


def fill(store: Store, catalog: Catalog, book: PriceBook) -> None:
    for account, zone in ((PARIS, "Europe/Paris"), (OTHER, "UTC")):
        create_account(store, account, actor="test:setup", time_zone=zone, plan="pro")
    events = usage_events_for(PARIS) + usage_events_for(OTHER)
    written = write_events(store, events, Rater(catalog, book))
    assert written.ok, written.error


def params() -> dict[str, Any]:
    return {"a": PARIS, "s": START, "e": END}


def events_snapshot(store: Store, where: str) -> list[tuple[Any, ...]]:
    return store.query(
        f"SELECT * FROM usage_events WHERE {where} ORDER BY account_id, source, event_id", params()
    ).rows


def daily_snapshot(store: Store, where: str) -> list[tuple[Any, ...]]:
    key = "account_id, team_id, project_id, local_date, kind, item, usage_type, unit"
    return store.query(
        f"SELECT {key}, sum(quantity), sum(credits), sum(usd), sum(events) FROM usage_daily "
        f"WHERE {where} GROUP BY {key} ORDER BY {key}",
        params(),
    ).rows


def fresh_aggregation(store: Store, where: str) -> list[tuple[Any, ...]]:
    """What usage_daily_mv would hold if every row of usage_events were inserted now
    (reprice's own copy of the view's query, which the next test holds to the view)."""
    return sorted(store.query(USAGE_DAILY.select.format(range=where), params()).rows)


@pytest.mark.parametrize("rollup", USAGE_ROLLUPS, ids=lambda rollup: rollup.table)
def test_reprices_rollup_queries_are_the_views_own(
    db: Store, catalog: Catalog, book: PriceBook, rollup: Rollup
) -> None:
    """Each rollup view's SELECT as the engine holds it (so as the migrations left it) and
    reprice's copy in meterhouse/rating/rollups.py give the same rows on the same usage: a
    migration that changes a view without reprice fails here."""
    fill(db, catalog, book)
    view = db.query(
        "SELECT as_select FROM system.tables "
        "WHERE database = currentDatabase() AND name = {name:String}",
        {"name": f"{rollup.table}_mv"},
    ).scalar()
    assert "GROUP BY" in view
    by_view = sorted(db.query(view).rows)
    assert len(by_view) > 10
    assert sorted(db.query(rollup.select.format(range="1")).rows) == by_view
    if rollup is USAGE_DAILY:
        # And what the view wrote on insert sums to the same, key by key.
        assert daily_snapshot(db, "1") == by_view


def totals(store: Store) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    events = store.query(
        f"SELECT sum(credits), sum(usd), sum(arraySum(lines.quantity)), "
        f"sum(length(lines.usage_type)) FROM usage_events WHERE {IN_RANGE}",
        params(),
    ).rows[0]
    daily = store.query(
        f"SELECT sum(credits), sum(usd), sum(quantity), sum(events) FROM usage_daily "
        f"WHERE {IN_RANGE}",
        params(),
    ).rows[0]
    return events, daily


def reprice_audits(store: Store) -> list[dict[str, Any]]:
    return list(
        store.query(
            "SELECT actor, target_id, account_id, before, after FROM audit_log "
            "WHERE action = 'usage.reprice' ORDER BY at"
        ).dicts()
    )


def local_dates(account: str) -> dict[str, date]:
    zone = "Europe/Paris" if account == PARIS else "UTC"
    return {e.id: e.time.astimezone(ZoneInfo(zone)).date() for e in usage_events_for(account)}


def test_reprice_replaces_the_range_and_keeps_usage_daily_exact(
    any_db: Store, catalog: Catalog, book: PriceBook, book_v2: PriceBook
) -> None:
    db = any_db
    fill(db, catalog, book)
    untouched_events = events_snapshot(db, OUT_OF_RANGE)
    untouched_daily = daily_snapshot(db, OUT_OF_RANGE)
    in_range = [e for e in usage_events_for(PARIS) if START <= local_dates(PARIS)[e.id] < END]
    assert len(in_range) == 12
    # 23:30 UTC on Nov 1 is Nov 2 in Paris: in; 23:30 UTC on Nov 4 is Nov 5: out.
    assert "paris-3" in {e.id for e in in_range}
    assert "paris-15" not in {e.id for e in in_range}
    ratings = [rate(e, plan="pro", catalog=catalog, book=book_v2) for e in in_range]
    expected = sum((rating.credits for rating in ratings if rating is not None), Decimal(0))

    result = reprice(db, PARIS, START, END, actor=ACTOR, rater=Rater(catalog, book_v2))

    assert (result.events, result.repriced, result.duplicates) == (12, 12, 0)
    assert result.daily_was_exact  # before the reprice, as the materialized view kept it
    assert not result.skipped
    assert result.credits_after == expected != result.credits_before
    assert result.usd_after == result.usd_before  # the catalog did not change, the book did
    events, daily = totals(db)
    assert events == daily  # credits, usd, quantity and line count, to the last digit
    assert events[0] == result.credits_after
    assert daily_snapshot(db, IN_RANGE) == fresh_aggregation(db, IN_RANGE)
    versions = db.query(
        f"SELECT DISTINCT price_version FROM usage_events WHERE {IN_RANGE}", params()
    ).rows
    assert versions == [(f"{catalog.version}+test-2",)]
    assert db.query(
        f"SELECT count(), uniqExact(source, event_id) FROM usage_events WHERE {IN_RANGE}",
        params(),
    ).rows == [(12, 12)]
    # Other accounts, and this account's other days, are exactly as they were.
    assert events_snapshot(db, OUT_OF_RANGE) == untouched_events
    assert daily_snapshot(db, OUT_OF_RANGE) == untouched_daily

    audits = reprice_audits(db)
    assert len(audits) == 1
    entry = audits[0]
    assert (entry["actor"], entry["target_id"], entry["account_id"]) == (ACTOR, PARIS, PARIS)
    before, after = json.loads(entry["before"]), json.loads(entry["after"])
    assert Decimal(before["credits"]) == result.credits_before
    assert Decimal(after["credits"]) == result.credits_after
    assert Decimal(after["usd"]) == result.usd_after
    assert (after["repriced"], after["completed"]) == (12, True)

    # Again with the same prices: nothing changes, nothing is recorded.
    again = reprice(db, PARIS, START, END, actor=ACTOR, rater=Rater(catalog, book_v2))
    assert (again.repriced, again.daily_rows, again.changed) == (0, 0, False)
    assert len(reprice_audits(db)) == 1


def test_dry_run_changes_nothing(
    db: Store, catalog: Catalog, book: PriceBook, book_v2: PriceBook
) -> None:
    fill(db, catalog, book)
    everything = "1 = 1"
    before = (events_snapshot(db, everything), daily_snapshot(db, everything))
    audit_rows = db.query("SELECT count() FROM audit_log").scalar()

    result = reprice(
        db, PARIS, START, END, actor=ACTOR, rater=Rater(catalog, book_v2), dry_run=True
    )

    assert result.dry_run
    assert result.repriced == 12
    assert result.credits_after != result.credits_before
    assert result.daily_rows == 0
    assert (events_snapshot(db, everything), daily_snapshot(db, everything)) == before
    assert db.query("SELECT count() FROM audit_log").scalar() == audit_rows


def test_inexact_rollups_and_double_stored_events_are_repaired(
    db: Store, catalog: Catalog, book: PriceBook
) -> None:
    """What a reprice stopped half-way leaves behind (a second copy of an event, a rollup
    that counts it) and rows that cannot be rebuilt."""
    fill(db, catalog, book)
    untouched = events_snapshot(db, OUT_OF_RANGE)
    copy = next(
        db.query("SELECT * EXCEPT ingested_at FROM usage_events WHERE event_id = 'paris-5'").dicts()
    )
    db.insert("usage_events", {name: [value] for name, value in copy.items()})
    broken = {**copy, "event_id": "paris-broken", "attributes": "{not json"}
    db.insert("usage_events", {name: [value] for name, value in broken.items()})
    stored = db.query(f"SELECT count() FROM usage_events WHERE {IN_RANGE}", params()).scalar()
    assert stored == 14  # 12 events, a second copy of one, and a row that cannot be rebuilt

    result = reprice(db, PARIS, START, END, actor=ACTOR, rater=Rater(catalog, book))

    assert (result.events, result.repriced, result.duplicates) == (13, 0, 1)
    assert dict(result.skipped) == {"attributes do not decode": 1}
    assert result.credits_after == result.credits_before - copy["credits"]
    assert db.query(
        f"SELECT count(), uniqExact(source, event_id) FROM usage_events WHERE {IN_RANGE}",
        params(),
    ).rows == [(13, 13)]
    assert db.query("SELECT attributes FROM usage_events WHERE event_id = 'paris-broken'").rows == [
        ("{not json",)
    ]
    events, daily = totals(db)
    assert events == daily
    assert daily_snapshot(db, IN_RANGE) == fresh_aggregation(db, IN_RANGE)
    assert events_snapshot(db, OUT_OF_RANGE) == untouched
    assert len(reprice_audits(db)) == 1


def test_usage_daily_alone_off_is_rebuilt(db: Store, catalog: Catalog, book: PriceBook) -> None:
    fill(db, catalog, book)
    db.insert(
        "usage_daily",
        {
            "account_id": [PARIS],
            "team_id": ["team0"],
            "project_id": [""],
            "local_date": [START + timedelta(days=1)],
            "kind": ["api"],
            "item": ["/v1/things"],
            "usage_type": ["call"],
            "unit": ["call"],
            "quantity": [Decimal(1)],
            "credits": [Decimal("0.000000000001")],
            "usd": [Decimal(0)],
            "events": [1],
        },
    )
    result = reprice(db, PARIS, START, END, actor=ACTOR, rater=Rater(catalog, book))
    assert (result.repriced, result.daily_was_exact) == (0, False)
    assert result.daily_rows > 0
    events, daily = totals(db)
    assert events == daily


@pytest.mark.parametrize(
    ("account", "start", "end", "problem"),
    [
        (PARIS, END, START, "must be before"),
        (PARIS, START, START, "must be before"),
        ("bad id!", START, END, "not allowed"),
    ],
)
def test_bad_arguments_are_refused(
    db: Store, account: str, start: date, end: date, problem: str
) -> None:
    with pytest.raises(MeterhouseError, match=problem):
        reprice(db, account, start, end, actor=ACTOR)


def test_a_range_without_usage_changes_nothing(
    db: Store, catalog: Catalog, book: PriceBook
) -> None:
    fill(db, catalog, book)
    result = reprice(db, PARIS, date(2025, 1, 1), date(2025, 2, 1), actor=ACTOR)
    assert (result.events, result.changed, result.credits_after) == (0, False, 0)
    with pytest.raises(RepriceError):
        reprice(db, PARIS, END, START, actor=ACTOR)
