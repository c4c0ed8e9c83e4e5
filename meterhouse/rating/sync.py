"""Keep the ``model_prices`` table in step with the price catalog, without rewriting the past.

Why not just insert the catalog's rows: the table is the record of which price applied
when, and a statement from last month must read the same next year. So a sync only ever
changes what is in force from now on:

* a price period the store lacks is **added**; a model never seen before gets the
  catalog's whole history;
* a period whose price changed is **closed** at the sync time (``effective_to``) and a new
  row carries the new price **from the sync time** on, even when the catalog dates the
  change earlier: usage already rated keeps its explanation;
* a period the catalog no longer has is **closed** at the sync time (a period that had
  not started yet is closed at its own start, i.e. it never takes effect);
* a row whose prices still hold is left as it is (``unchanged``), except that its end may
  move when the catalog schedules or withdraws a future change, and a renamed model or a
  new context window rewrites the row in place (``updated``): neither changes a price
  that already applied.

A row is rewritten by inserting it again with a newer ``synced_at`` (the table is a
ReplacingMergeTree on that version), so readers use ``FINAL``. Running the same sync twice
writes nothing the second time, and a sync never touches ``usage_events``: stored usage
keeps its credits and ``price_version`` until someone reprices it on purpose
(``meterhouse reprice``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from meterhouse.access.tenants import audit
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger
from meterhouse.rating.catalog_rows import COLUMNS, PRICE_COLUMNS
from meterhouse.store.base import Store

log = get_logger(__name__)

Row = dict[str, Any]
RowsProvider = Callable[[datetime], Mapping[str, Sequence[Any]]]
"""(sync time) -> catalog rows column-wise, like :meth:`Catalog.price_rows`."""
Change = Literal["added", "closed", "updated"]

PRICE_FIELDS: Final = (*PRICE_COLUMNS, "tiers")  # a difference here is a price change
META_FIELDS: Final = ("model_name", "context_window")  # a difference here is not
MILLISECOND: Final = timedelta(milliseconds=1)


class PriceSyncError(MeterhouseError):
    """The catalog rows given to the sync are malformed (missing column, repeated key)."""


@dataclass(frozen=True)
class PriceChange:
    """One row the sync writes, and why."""

    change: Change
    row: Row


@dataclass
class SyncResult:
    """What a sync did (or, with ``dry_run``, would do)."""

    catalog_version: str
    synced_at: datetime
    dry_run: bool
    changes: list[PriceChange] = field(default_factory=list)
    unchanged: int = 0
    stored_before: int = 0

    def count(self, change: Change) -> int:
        return sum(1 for item in self.changes if item.change == change)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, Any]:
        return {
            "catalog_version": self.catalog_version,
            "synced_at": self.synced_at,
            "added": self.count("added"),
            "closed": self.count("closed"),
            "updated": self.count("updated"),
            "unchanged": self.unchanged,
            "dry_run": self.dry_run,
        }


def catalog_rows_provider() -> RowsProvider:
    """The bundled genai-prices snapshot (the default source of a sync)."""
    from meterhouse.rating.catalog import Catalog

    return Catalog.load().price_rows


def sync_model_prices(
    store: Store,
    *,
    actor: str,
    rows_provider: RowsProvider | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> SyncResult:
    """Bring ``model_prices`` in step with the catalog (see the module docstring).

    Records the sync in the audit log when it wrote anything; a sync that finds nothing
    to change writes nothing at all, the audit log included.
    """
    at = _to_millisecond(now or datetime.now(UTC))
    catalog = rows_from_columns((rows_provider or catalog_rows_provider())(at))
    stored = stored_price_rows(store)
    version = _catalog_version(catalog)
    # The row version must beat every stored one, even if this host's clock is behind.
    newest = max((row["synced_at"] for row in stored), default=None)
    synced_at = max(at, newest + MILLISECOND) if newest is not None else at
    result = plan_sync(stored, catalog, now=at, synced_at=synced_at, catalog_version=version)
    result.dry_run = dry_run
    if dry_run or not result.changed:
        return result
    written = [item.row for item in result.changes]
    store.insert("model_prices", {name: [row[name] for row in written] for name in COLUMNS})
    audit(
        store,
        actor=actor,
        action="prices.sync",
        target_type="model_prices",
        target_id=version,
        account_id="",
        before={
            "rows": len(stored),
            "catalog_versions": sorted({str(row["catalog_version"]) for row in stored}),
        },
        after=result.summary(),
    )
    log.info("model prices synced", **{k: v for k, v in result.summary().items() if k != "dry_run"})
    return result


def stored_price_rows(store: Store) -> list[Row]:
    """Every stored price row, latest version of each key."""
    return list(store.query(f"SELECT {', '.join(COLUMNS)} FROM model_prices FINAL").dicts())


def rows_from_columns(columns: Mapping[str, Sequence[Any]]) -> list[Row]:
    """Column-wise catalog rows as row dicts, checked: every column, each key once."""
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise PriceSyncError(f"catalog rows lack column(s) {', '.join(missing)}")
    lengths = {len(columns[name]) for name in COLUMNS}
    if len(lengths) != 1:
        raise PriceSyncError("catalog row columns differ in length")
    rows = [{name: columns[name][index] for name in COLUMNS} for index in range(lengths.pop())]
    if not rows:
        # An empty source is far more likely a broken one than a catalog that sells nothing;
        # syncing it would close every price in the store.
        raise PriceSyncError("catalog rows are empty; refusing to close every stored price")
    seen: set[tuple[str, str, datetime]] = set()
    for row in rows:
        key = (row["provider"], row["model_id"], row["effective_from"])
        if key in seen:
            raise PriceSyncError(
                f"catalog rows repeat the period of {key[0]}/{key[1]} from {key[2].isoformat()}"
            )
        seen.add(key)
    return rows


def plan_sync(
    stored: Sequence[Row],
    catalog: Sequence[Row],
    *,
    now: datetime,
    synced_at: datetime,
    catalog_version: str,
) -> SyncResult:
    """The rows to write so the store says what the catalog says from ``now`` on. Pure."""
    by_model_stored: dict[tuple[str, str], list[Row]] = defaultdict(list)
    by_model_catalog: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in stored:
        by_model_stored[row["provider"], row["model_id"]].append(row)
    for row in catalog:
        by_model_catalog[row["provider"], row["model_id"]].append(row)
    result = SyncResult(catalog_version, synced_at, dry_run=False, stored_before=len(stored))
    rewritten = 0
    for model in sorted(by_model_stored.keys() | by_model_catalog.keys()):
        plan = _ModelPlan(by_model_stored.get(model, []), now, synced_at)
        plan.reconcile(sorted(by_model_catalog.get(model, []), key=_start))
        result.changes.extend(plan.changes())
        rewritten += plan.rewritten_stored()
    result.unchanged = len(stored) - rewritten
    return result


class _ModelPlan:
    """Reconciles one model's stored rows with its catalog periods."""

    def __init__(self, stored: Sequence[Row], now: datetime, synced_at: datetime) -> None:
        self.now = now
        self.synced_at = synced_at
        self.stored_keys = {row["effective_from"] for row in stored}
        self.rows: dict[datetime, Row] = {row["effective_from"]: dict(row) for row in stored}
        self.written: dict[datetime, PriceChange] = {}
        self.handled: set[datetime] = set()

    def reconcile(self, periods: Sequence[Row]) -> None:
        if not self.rows:
            for period in periods:  # a new model: its whole history
                self._write("added", dict(period))
            return
        for period in periods:
            end = period["effective_to"]
            if end is not None and end <= self.now:
                continue  # the past is kept as stored
            self._reconcile_period(period, max(_start(period), self.now), end)
        for key, row in list(self.rows.items()):
            if key not in self.handled and _in_force_after(row, self.now):
                # A period the catalog no longer has: it ends now, or never starts.
                self._write("closed", {**row, "effective_to": max(key, self.now)})

    def _reconcile_period(self, period: Row, start: datetime, end: datetime | None) -> None:
        current = self._in_force(start)
        if current is not None and _same(current, period, PRICE_FIELDS):
            self.handled.add(current["effective_from"])
            changed = {name: period[name] for name in META_FIELDS if current[name] != period[name]}
            if current["effective_to"] != end:
                changed["effective_to"] = end
            if changed:
                old_end = current["effective_to"]
                shortened = end is not None and (old_end is None or end < old_end)
                kind: Change = "closed" if shortened else "updated"
                self._write(kind, {**current, **changed})
            return
        if current is not None and current["effective_from"] < start:
            self.handled.add(current["effective_from"])
            self._write("closed", {**current, "effective_to": start})
        self._write("added", {**period, "effective_from": start})

    def _in_force(self, at: datetime) -> Row | None:
        """The stored row in force at ``at`` (the latest-starting one if rows overlap)."""
        found = [
            row
            for key, row in self.rows.items()
            if key <= at and (row["effective_to"] is None or row["effective_to"] > at)
        ]
        return max(found, key=_start) if found else None

    def _write(self, change: Change, row: Row) -> None:
        key = row["effective_from"]
        row["synced_at"] = self.synced_at
        previous = self.written.get(key)
        if previous is not None and previous.change == "added":
            change = "added"  # still a new row, whatever happened to it after
        elif key not in self.stored_keys:
            change = "added"
        self.rows[key] = row
        self.written[key] = PriceChange(change, row)
        self.handled.add(key)

    def changes(self) -> list[PriceChange]:
        return [self.written[key] for key in sorted(self.written)]

    def rewritten_stored(self) -> int:
        return len(self.written.keys() & self.stored_keys)


def _start(row: Row) -> datetime:
    start: datetime = row["effective_from"]
    return start


def _same(a: Row, b: Row, names: Sequence[str]) -> bool:
    return all(a[name] == b[name] for name in names)


def _in_force_after(row: Row, now: datetime) -> bool:
    """Whether the row applies at any instant from ``now`` on."""
    end = row["effective_to"]
    return end is None or end > max(_start(row), now)


def _to_millisecond(at: datetime) -> datetime:
    """The table keeps milliseconds: compare and key on what a read gives back."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=aware.microsecond // 1000 * 1000)


def _catalog_version(rows: Sequence[Row]) -> str:
    versions = sorted({str(row["catalog_version"]) for row in rows})
    return ", ".join(versions) if versions else "(empty catalog)"
