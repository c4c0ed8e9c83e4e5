"""Re-rate an account's stored usage for a date range: the tool for corrections.

Prices never change stored usage by themselves (a catalog sync or a new price book only
applies to events rated after it). When stored usage *is* wrong (a contract entered late,
a mis-set plan, a price that was wrong), ``reprice`` rates the account's stored events
again with the current catalog and price book and replaces the rows that come out
different. The event itself comes back from the row: ``event_type``, ``source``,
``event_id``, ``event_time`` and the ``attributes`` JSON (the event's data as received).

How the replacement stays safe:

* the range is of ``local_date`` (the account's own calendar days, as statements use),
  and every statement names the account: no other account or day is read or written;
* new rows are inserted **before** the old ones are deleted, and the old ones are picked
  by an ``ingested_at`` older than the new rows', so a failure part-way leaves an event
  counted twice, never lost; running reprice again repairs it (it replaces every copy);
* the rollups (``usage_daily`` and the dashboards' hourly ones, meterhouse/rating/rollups.py)
  are fed by materialized views on insert: deleting from ``usage_events`` subtracts
  nothing from them. So after the rows are replaced the account's rollup rows for the
  range are deleted and
  rebuilt from ``usage_events`` with the view's own aggregation, and then compared with a
  fresh aggregation, key by key, to the last digit; a difference is an error.

Known limit: an event of the same account and range ingested while the rebuild runs (between
its DELETE and its INSERT … SELECT) is counted twice in the rollups; run reprice when
the account's range is closed, e.g. for last month.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any, Final

import msgspec

from meterhouse import records as r
from meterhouse.access.tenants import audit, check_id
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import LINE_FIELDS, SCHEMAS, ColumnBuilder
from meterhouse.rating.money import CONTEXT
from meterhouse.rating.rate import is_usage
from meterhouse.rating.rater import Rater
from meterhouse.rating.rollups import USAGE_ROLLUPS, Rollup
from meterhouse.store.base import Store

log = get_logger(__name__)

Row = dict[str, Any]  # a stored usage_events row, by column name

# What a rating decides; a row whose values here come out equal is left as stored.
RATED_COLUMNS: Final = (
    "kind",
    "item",
    "provider",
    *LINE_FIELDS,
    "credits",
    "usd",
    "priced",
    "unpriced_reason",
    "price_version",
)
# Every column the row builder writes; with ingested_at, every column of usage_events.
ROW_COLUMNS: Final = tuple(SCHEMAS["usage_events"].names)
# The account's rows in [start, end) of local_date; the event_time bounds (a local date is
# at most a day away from the UTC date) only let ClickHouse skip other months' partitions.
RANGE: Final = (
    "account_id = {account:String} AND local_date >= {start:Date} AND local_date < {end:Date} "
    "AND event_time >= {time_from:DateTime64(3, 'UTC')} "
    "AND event_time < {time_to:DateTime64(3, 'UTC')}"
)
DAILY_RANGE: Final = (
    "account_id = {account:String} AND local_date >= {start:Date} AND local_date < {end:Date}"
)
NO_DEDUP: Final = {"insert_deduplicate": 0}  # a re-inserted block may equal an earlier one
CHUNK: Final = 5_000
MILLISECOND: Final = timedelta(milliseconds=1)


class RepriceError(MeterhouseError):
    """Bad arguments, or the store did not end up as it should (the message says how)."""


@dataclass
class RepriceResult:
    """What a reprice found and changed (with ``dry_run``: would change)."""

    account_id: str
    start: date
    end: date
    dry_run: bool
    events: int = 0
    repriced: int = 0
    duplicates: int = 0  # extra stored copies of an event, removed
    skipped: Counter[str] = field(default_factory=Counter)
    credits_before: Decimal = Decimal(0)
    credits_after: Decimal = Decimal(0)
    usd_before: Decimal = Decimal(0)
    usd_after: Decimal = Decimal(0)
    price_versions_before: Counter[str] = field(default_factory=Counter)
    price_versions_after: Counter[str] = field(default_factory=Counter)
    daily_was_exact: bool = True
    daily_rows: int = 0  # usage_daily rows rebuilt (0: left alone)

    @property
    def changed(self) -> bool:
        return self.repriced > 0 or self.duplicates > 0 or self.daily_rows > 0

    def summary(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "from": self.start,
            "to": self.end,
            "dry_run": self.dry_run,
            "events": self.events,
            "repriced": self.repriced,
            "duplicates_removed": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "credits_before": self.credits_before,
            "credits_after": self.credits_after,
            "usd_before": self.usd_before,
            "usd_after": self.usd_after,
            "price_versions_before": dict(sorted(self.price_versions_before.items())),
            "price_versions_after": dict(sorted(self.price_versions_after.items())),
            "usage_daily_was_exact": self.daily_was_exact,
            "usage_daily_rows_rebuilt": self.daily_rows,
        }


def reprice(
    store: Store,
    account_id: str,
    start: date,
    end: date,
    *,
    actor: str,
    rater: Rater | None = None,
    dry_run: bool = False,
) -> RepriceResult:
    """Re-rate ``account_id``'s usage events with local_date in [start, end).

    ``rater`` defaults to the service's (the bundled catalog and the shipped price book).
    Writes the change to the audit log, with ``actor``, when anything was written.
    """
    check_id("account", account_id)
    if start >= end:
        raise RepriceError(f"--from {start} must be before --to {end} (the range is [from, to))")
    builder = ColumnBuilder(AccountDirectory(store), rater or Rater.default())
    result = RepriceResult(account_id, start, end, dry_run)
    params = _range_params(account_id, start, end)
    result.daily_was_exact = not daily_differences(store, account_id, start, end)
    completed = False
    try:
        for day in _days_with_usage(store, params):
            stored = _stored_rows(store, params, day)
            with localcontext(CONTEXT):  # totals exact at any size, as the column sums are
                replacements = _rerate(stored, builder, result)
            if replacements and not dry_run:
                _replace(store, account_id, day, stored, replacements)
        if not dry_run and (result.repriced or result.duplicates or not result.daily_was_exact):
            result.daily_rows = rebuild_daily(store, account_id, start, end)
        completed = True
    finally:
        if result.changed and not dry_run:  # recorded even when a failure cut it short
            _audit(store, result, actor, completed=completed)
    if result.daily_rows:
        _check_after(store, result, params)
    log.info("usage repriced", **{k: v for k, v in result.summary().items() if k != "skipped"})
    return result


def _audit(store: Store, result: RepriceResult, actor: str, *, completed: bool) -> None:
    span = {"from": result.start, "to": result.end}
    audit(
        store,
        actor=actor,
        action="usage.reprice",
        target_type="account",
        target_id=result.account_id,
        account_id=result.account_id,
        before={
            **span,
            "events": result.events,
            "credits": result.credits_before,
            "usd": result.usd_before,
            "price_versions": dict(result.price_versions_before),
            "usage_daily_was_exact": result.daily_was_exact,
        },
        after={
            **span,
            "completed": completed,
            "repriced": result.repriced,
            "duplicates_removed": result.duplicates,
            "skipped": dict(result.skipped),
            "credits": result.credits_after,
            "usd": result.usd_after,
            "price_versions": dict(result.price_versions_after),
            "usage_daily_rows_rebuilt": result.daily_rows,
        },
    )


def _range_params(account_id: str, start: date, end: date) -> dict[str, Any]:
    return {
        "account": account_id,
        "start": start,
        "end": end,
        "time_from": datetime.combine(start, time(), tzinfo=UTC) - timedelta(days=1),
        "time_to": datetime.combine(end, time(), tzinfo=UTC) + timedelta(days=1),
    }


def _days_with_usage(store: Store, params: dict[str, Any]) -> list[date]:
    """Work day by day, so memory is bounded by one account-day of events."""
    result = store.query(
        f"SELECT DISTINCT local_date FROM usage_events WHERE {RANGE} ORDER BY local_date", params
    )
    return [row[0] for row in result.rows]


def _stored_rows(store: Store, params: dict[str, Any], day: date) -> list[Row]:
    columns = ", ".join(f"`{name}`" for name in (*ROW_COLUMNS, "ingested_at"))
    result = store.query(
        f"SELECT {columns} FROM usage_events WHERE {RANGE} AND local_date = {{day:Date}} "
        "ORDER BY event_time, source, event_id",
        {**params, "day": day},
    )
    return list(result.dicts())


def _rerate(stored: Sequence[Row], builder: ColumnBuilder, result: RepriceResult) -> list[Row]:
    """New rows for the stored rows whose rating changed; tallies every row in ``result``.

    An event stored twice (a reprice that stopped between insert and delete) is replaced
    whatever its rating, so the delete removes every older copy.
    """
    copies = Counter((row["source"], row["event_id"]) for row in stored)
    newest: dict[tuple[str, str], Row] = {}
    for row in stored:
        result.credits_before += row["credits"]
        result.usd_before += row["usd"]
        result.price_versions_before[row["price_version"]] += 1
        key = (row["source"], row["event_id"])
        if key not in newest or row["ingested_at"] > newest[key]["ingested_at"]:
            newest[key] = row
    rerated = _rerated_rows(list(newest.values()), builder)
    replacements: list[Row] = []
    for key, row in newest.items():
        result.events += 1
        result.duplicates += copies[key] - 1
        new = row
        again, problem = rerated[key]
        if again is None:
            result.skipped[problem] += 1
        elif _rating_of(again) != _rating_of(row):
            new = again
            result.repriced += 1
        if new is not row or copies[key] > 1:
            replacements.append(new)  # inserted by ROW_COLUMNS: its ingested_at is renewed
        result.credits_after += new["credits"]
        result.usd_after += new["usd"]
        result.price_versions_after[new["price_version"]] += 1
    return replacements


def _rerated_rows(
    rows: Sequence[Row], builder: ColumnBuilder
) -> dict[tuple[str, str], tuple[Row | None, str]]:
    """Each stored row rated again the way ingest rates (same rater, same row builder),
    keyed by its (source, event_id); None and why for a row whose event cannot be."""
    out: dict[tuple[str, str], tuple[Row | None, str]] = {}
    usage: list[tuple[Row, r.Event]] = []
    for row in rows:
        event, problem = rebuild_event(row)
        if event is None or not is_usage(event):
            out[row["source"], row["event_id"]] = (None, problem or "no longer usage")
        else:
            usage.append((row, event))
    built = builder.build([event for _, event in usage]).tables.get("usage_events")
    new_rows = built.to_pylist() if built is not None else []
    if len(new_rows) != len(usage):  # one usage row per usage event, in their order
        raise RepriceError(f"{len(usage)} events rated again into {len(new_rows)} usage rows")
    for (row, _), new in zip(usage, new_rows, strict=True):
        # The stored row's identity and day stay: the delete finds its copies by them.
        new.update(event_id=row["event_id"], local_date=row["local_date"])
        out[row["source"], row["event_id"]] = (new, "")
    return out


def rebuild_event(row: Row) -> tuple[r.Event | None, str]:
    """The event a stored usage row came from, or None and why it cannot be rebuilt."""
    data_type = r.DATA_TYPES.get(row["event_type"])
    if data_type is None:
        return None, f"unknown event type {row['event_type']}"
    try:
        data = msgspec.json.decode(row["attributes"] or "null", type=data_type)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, "attributes do not decode"
    event = r.Event(
        id=row["event_id"],
        source=row["source"],
        type=row["event_type"],
        time=row["event_time"],
        data=data,
        account_id=row["account_id"],
    )
    return event, ""


def _rating_of(row: Row) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, list) else v for v in (row[n] for n in RATED_COLUMNS))


def _replace(
    store: Store, account_id: str, day: date, stored: Sequence[Row], replacements: list[Row]
) -> None:
    """Insert the new rows, then delete the rows they replace (every older copy)."""
    newest = max(row["ingested_at"] for row in stored)
    written_at = max(datetime.now(UTC), newest + MILLISECOND)
    for chunk in _chunks(replacements):
        columns = {name: [row[name] for row in chunk] for name in ROW_COLUMNS}
        columns["ingested_at"] = [written_at] * len(chunk)
        store.insert("usage_events", columns, settings=NO_DEDUP)
        store.command(
            "DELETE FROM usage_events WHERE account_id = {account:String} "
            "AND local_date = {day:Date} AND ingested_at < {written_at:DateTime64(3, 'UTC')} "
            "AND (source, event_id) IN "
            "(SELECT arrayJoin(arrayZip({sources:Array(String)}, {ids:Array(String)})))",
            {
                "account": account_id,
                "day": day,
                "written_at": written_at,
                "sources": [row["source"] for row in chunk],
                "ids": [row["event_id"] for row in chunk],
            },
        )
        kept = store.query(
            "SELECT count() FROM usage_events WHERE account_id = {account:String} "
            "AND local_date = {day:Date} AND (source, event_id) IN "
            "(SELECT arrayJoin(arrayZip({sources:Array(String)}, {ids:Array(String)})))",
            {
                "account": account_id,
                "day": day,
                "sources": [row["source"] for row in chunk],
                "ids": [row["event_id"] for row in chunk],
            },
        ).scalar()
        if int(kept) != len(chunk):
            raise RepriceError(
                f"after replacing {len(chunk)} events of {account_id} on {day}, "
                f"{kept} rows hold their ids; run reprice again for that day to repair it"
            )


def _chunks(rows: list[Row]) -> Iterator[list[Row]]:
    for index in range(0, len(rows), CHUNK):
        yield rows[index : index + CHUNK]


def rebuild_daily(store: Store, account_id: str, start: date, end: date) -> int:
    """Replace the account's rows in [start, end) of every usage rollup by an exact
    aggregation; return how many usage_daily rows that made."""
    params = _range_params(account_id, start, end)
    for rollup in USAGE_ROLLUPS:
        store.command(f"DELETE FROM {rollup.table} WHERE {DAILY_RANGE}", params)
        names = ", ".join(rollup.columns)
        store.command(
            f"INSERT INTO {rollup.table} ({names}) {rollup.select.format(range=RANGE)}",
            params,
            settings=NO_DEDUP,
        )
    count = store.query(f"SELECT count() FROM usage_daily WHERE {DAILY_RANGE}", params).scalar()
    return int(count)


def daily_differences(store: Store, account_id: str, start: date, end: date) -> list[str]:
    """Keys where a usage rollup disagrees with a fresh aggregation of usage_events."""
    return [
        difference
        for rollup in USAGE_ROLLUPS
        for difference in rollup_differences(store, rollup, account_id, start, end)
    ]


def rollup_differences(
    store: Store, rollup: Rollup, account_id: str, start: date, end: date
) -> list[str]:
    """Keys where ``rollup`` disagrees with a fresh aggregation of usage_events."""
    params = _range_params(account_id, start, end)
    stored = store.query(rollup.read(DAILY_RANGE), params)
    fresh = store.query(rollup.select.format(range=RANGE), params)
    width = len(rollup.key)
    have = {row[:width]: row[width:] for row in stored.rows}
    want = {row[:width]: row[width:] for row in fresh.rows}
    return [
        json.dumps([rollup.table, *(str(v) for v in k)])
        for k in sorted(have.keys() | want.keys(), key=str)
        if have.get(k) != want.get(k)
    ]


def _check_after(store: Store, result: RepriceResult, params: dict[str, Any]) -> None:
    """The store must now say what the reprice computed, in both tables."""
    totals = store.query(
        f"SELECT count(), sum(credits), sum(usd) FROM usage_events WHERE {RANGE}", params
    ).rows[0]
    expected = (result.events, result.credits_after, result.usd_after)
    if (int(totals[0]), totals[1], totals[2]) != expected:
        raise RepriceError(
            f"usage_events of {result.account_id} hold {totals[0]} events, {totals[1]} credits, "
            f"{totals[2]} USD after reprice; expected {expected}. Run reprice again to repair."
        )
    differences = daily_differences(store, result.account_id, result.start, result.end)
    if differences:
        raise RepriceError(
            f"the usage rollups of {result.account_id} differ from usage_events at "
            f"{len(differences)} key(s) after the rebuild, e.g. {differences[0]}"
        )
