"""`prices sync`: model_prices keeps its history; stored usage is never repriced by it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from meterhouse.rating import Catalog, PriceBook
from meterhouse.rating.catalog_rows import COLUMNS, EPOCH
from meterhouse.rating.rater import Rater
from meterhouse.rating.sync import (
    PriceSyncError,
    RowsProvider,
    plan_sync,
    rows_from_columns,
    stored_price_rows,
    sync_model_prices,
)
from meterhouse.store.base import Store
from tests.rating.helpers import model_event
from tests.support.write_path import write_events

T1 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
T3 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
T4 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
ACTOR = "test:sync"


@pytest.fixture
def db(migrated_store: Store) -> Store:
    return migrated_store


def provider_of(rows: Sequence[Mapping[str, Any]]) -> RowsProvider:
    """A rows provider serving ``rows`` (as Catalog.price_rows does, column-wise)."""

    def provide(synced_at: datetime) -> dict[str, list[Any]]:
        return {name: [{**row, "synced_at": synced_at}[name] for row in rows] for name in COLUMNS}

    return provide


def catalog_rows() -> list[dict[str, Any]]:
    return rows_from_columns(Catalog.load().price_rows(T1))


def find(rows: Sequence[Mapping[str, Any]], provider: str, model_id: str) -> list[dict[str, Any]]:
    return sorted(
        (dict(r) for r in rows if r["provider"] == provider and r["model_id"] == model_id),
        key=lambda r: r["effective_from"],
    )


def price_at(store: Store, provider: str, model_id: str, at: datetime) -> Decimal | None:
    """The input price in force at ``at``, read the way the Models dashboard reads it."""
    found = store.query(
        "SELECT input_mtok FROM model_prices FINAL WHERE provider = {p:String} "
        "AND model_id = {m:String} AND effective_from <= {t:DateTime64(3, 'UTC')} "
        "AND (effective_to IS NULL OR effective_to > {t:DateTime64(3, 'UTC')})",
        {"p": provider, "m": model_id, "t": at},
    ).rows
    assert len(found) <= 1, found
    return found[0][0] if found else None


def sync_audits(store: Store) -> list[dict[str, Any]]:
    return list(
        store.query(
            "SELECT actor, target_id, before, after FROM audit_log "
            "WHERE action = 'prices.sync' ORDER BY at"
        ).dicts()
    )


def physical_rows(store: Store) -> int:
    return int(store.query("SELECT count() FROM model_prices").scalar())


def changed_catalog(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The catalog after an upstream change: gpt-4o's input price rises, a model is
    dropped, and a new one appears."""
    changed: list[dict[str, Any]] = []
    for original in rows:
        if original["provider"] == "openai" and original["model_id"] == "gpt-4o-mini":
            continue  # dropped
        if original["provider"] == "openai" and original["model_id"] == "gpt-4o":
            changed.append({**original, "input_mtok": Decimal("3.000000000000")})
        else:
            changed.append(dict(original))
    changed.append(
        {
            **changed[0],
            "provider": "openai",
            "model_id": "gpt-test-new",
            "model_name": "GPT test",
            "effective_from": EPOCH,
            "effective_to": None,
        }
    )
    return changed


def test_first_sync_stores_the_catalog_and_a_second_changes_nothing(
    db: Store,
) -> None:
    store = db
    rows = catalog_rows()
    first = sync_model_prices(store, actor=ACTOR, now=T1)
    assert (first.count("added"), first.count("closed"), first.unchanged) == (len(rows), 0, 0)
    stored = stored_price_rows(store)
    key = ("provider", "model_id", "effective_from")
    assert sorted(tuple(r[k] for k in key) for r in stored) == sorted(
        tuple(r[k] for k in key) for r in rows
    )
    # Dated history (a period that ended) is stored as the catalog states it.
    closed_periods = [r for r in stored if r["effective_to"] is not None]
    assert closed_periods, "the bundled catalog has dated price changes"
    before = physical_rows(store)

    second = sync_model_prices(store, actor=ACTOR, now=T2)
    assert not second.changed
    assert second.unchanged == len(rows)
    assert physical_rows(store) == before  # nothing rewritten
    audits = sync_audits(store)
    assert len(audits) == 1  # only the sync that changed something is recorded
    assert audits[0]["actor"] == ACTOR
    assert json.loads(audits[0]["after"])["added"] == len(rows)


def test_a_catalog_change_closes_rows_and_never_rewrites_the_past(db: Store) -> None:
    store = db
    rows = catalog_rows()
    sync_model_prices(store, actor=ACTOR, rows_provider=provider_of(rows), now=T1)
    old_price = find(rows, "openai", "gpt-4o")[-1]["input_mtok"]

    result = sync_model_prices(
        store, actor=ACTOR, rows_provider=provider_of(changed_catalog(rows)), now=T2
    )
    mini = find(rows, "openai", "gpt-4o-mini")
    still_open_mini = [r for r in mini if r["effective_to"] is None or r["effective_to"] > T2]
    assert result.count("added") == 2  # gpt-4o's new price from T2, and the new model
    assert result.count("closed") == 1 + len(still_open_mini)
    assert result.count("updated") == 0
    assert result.unchanged == len(rows) - result.count("closed")

    history = find(stored_price_rows(store), "openai", "gpt-4o")
    assert [(r["effective_from"], r["effective_to"], r["input_mtok"]) for r in history][-2:] == [
        (history[-2]["effective_from"], T2, old_price),
        (T2, None, Decimal("3")),
    ]
    # A statement of last month still reads the old price; from the sync on, the new one.
    assert price_at(store, "openai", "gpt-4o", T2 - timedelta(days=20)) == old_price
    assert price_at(store, "openai", "gpt-4o", T2 - timedelta(milliseconds=1)) == old_price
    assert price_at(store, "openai", "gpt-4o", T2) == Decimal("3")
    # The dropped model keeps its rows, closed at the sync.
    assert price_at(store, "openai", "gpt-4o-mini", T2 - timedelta(days=1)) is not None
    assert price_at(store, "openai", "gpt-4o-mini", T2) is None
    assert price_at(store, "openai", "gpt-test-new", T2) is not None

    # Idempotent: the same catalog again changes nothing.
    again = sync_model_prices(
        store, actor=ACTOR, rows_provider=provider_of(changed_catalog(rows)), now=T3
    )
    assert not again.changed

    # Back to the original catalog: the change is undone from T4 on, history kept.
    back = sync_model_prices(store, actor=ACTOR, rows_provider=provider_of(rows), now=T4)
    assert back.count("added") == 2  # gpt-4o's old price again, gpt-4o-mini again
    assert back.count("closed") == 2  # gpt-4o's T2 price, the test model
    assert price_at(store, "openai", "gpt-4o", T3) == Decimal("3")
    assert price_at(store, "openai", "gpt-4o", T4) == old_price
    assert price_at(store, "openai", "gpt-4o-mini", T3) is None
    assert price_at(store, "openai", "gpt-4o-mini", T4) is not None
    assert price_at(store, "openai", "gpt-test-new", T4) is None
    assert not sync_model_prices(
        store, actor=ACTOR, rows_provider=provider_of(rows), now=T4
    ).changed

    audits = sync_audits(store)
    assert len(audits) == 3
    assert json.loads(audits[1]["after"])["closed"] == result.count("closed")


def test_a_catalog_change_never_reprices_stored_usage(
    db: Store, catalog: Catalog, book: PriceBook
) -> None:
    store = db
    rows = catalog_rows()
    sync_model_prices(store, actor=ACTOR, rows_provider=provider_of(rows), now=T1)
    events = [
        msgspec.structs.replace(
            model_event("gpt-4o", at=T1 + timedelta(hours=i), input_tokens=1000 + i),
            id=f"e{i}",
        )
        for i in range(3)
    ]
    result = write_events(store, events, Rater(catalog, book))
    assert result.ok, result.error
    query = "SELECT event_id, credits, usd, price_version FROM usage_events ORDER BY event_id"
    before = store.query(query).rows
    assert len(before) == 3

    sync_model_prices(store, actor=ACTOR, rows_provider=provider_of(changed_catalog(rows)), now=T2)
    assert price_at(store, "openai", "gpt-4o", T2) == Decimal("3")
    assert store.query(query).rows == before


def test_dry_run_writes_nothing(db: Store) -> None:
    result = sync_model_prices(db, actor=ACTOR, now=T1, dry_run=True)
    assert result.dry_run
    assert result.count("added") > 2000
    assert physical_rows(db) == 0
    assert sync_audits(db) == []


# --- the plan alone: scheduled and withdrawn changes -----------------------------------


def row(start: datetime, end: datetime | None, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "p",
        "model_id": "m",
        "model_name": "M",
        "effective_from": start,
        "effective_to": end,
        "input_mtok": Decimal(price),
        "output_mtok": None,
        "cache_read_mtok": None,
        "cache_write_mtok": None,
        "tiers": "",
        "context_window": 1000,
        "catalog_version": "v",
        "synced_at": T1,
        **extra,
    }


def apply(stored: list[dict[str, Any]], catalog: list[dict[str, Any]], now: datetime) -> Any:
    """Plan a sync and apply it to ``stored`` the way ReplacingMergeTree would."""
    result = plan_sync(stored, catalog, now=now, synced_at=now, catalog_version="v")
    by_key = {r["effective_from"]: r for r in stored}
    for change in result.changes:
        by_key[change.row["effective_from"]] = change.row
    stored[:] = sorted(by_key.values(), key=lambda r: r["effective_from"])
    return result


def test_a_scheduled_change_and_its_withdrawal() -> None:
    future = T3
    stored = [row(EPOCH, None, "1")]
    scheduled = [row(EPOCH, future, "1"), row(future, None, "2")]
    result = apply(stored, scheduled, now=T2)
    assert (result.count("closed"), result.count("added")) == (1, 1)
    assert [(r["effective_from"], r["effective_to"]) for r in stored] == [
        (EPOCH, future),
        (future, None),
    ]
    assert not apply(stored, scheduled, now=T2 + timedelta(hours=1)).changed

    # Withdrawn before it started: the first row is open again, the scheduled one never
    # takes effect (it ends where it starts).
    withdrawn = [row(EPOCH, None, "1")]
    result = apply(stored, withdrawn, now=T2 + timedelta(hours=2))
    assert (result.count("updated"), result.count("closed")) == (1, 1)
    assert [(r["effective_from"], r["effective_to"]) for r in stored] == [
        (EPOCH, None),
        (future, future),
    ]
    assert not apply(stored, withdrawn, now=T2 + timedelta(hours=3)).changed


def test_a_rename_rewrites_the_row_in_place() -> None:
    stored = [row(EPOCH, None, "1")]
    result = apply(stored, [row(EPOCH, None, "1", model_name="M2", context_window=2000)], T2)
    assert (result.count("updated"), result.count("added"), result.count("closed")) == (1, 0, 0)
    assert stored == [row(EPOCH, None, "1", model_name="M2", context_window=2000, synced_at=T2)]


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({name: [] for name in COLUMNS}, "empty"),
        ({name: [1] for name in COLUMNS if name != "tiers"}, "lack column(s) tiers"),
        (
            {name: [row(EPOCH, None, "1")[name]] * 2 for name in COLUMNS},
            "repeat the period of p/m",
        ),
    ],
)
def test_malformed_catalog_rows_are_refused(columns: dict[str, list[Any]], problem: str) -> None:
    with pytest.raises(PriceSyncError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        rows_from_columns(columns)
