"""Hourly rollups of meters (meter_hours, 0082): meter queries without parsing every event.

A meter whose aggregation rolls up (SUM, COUNT, AVG, MIN, MAX) gets one materialized view,
``meter_hours_<slug>_<hash>_mv``, that rolls its events up per UTC hour, account, team,
project, subject and group values as they are inserted. The hash names the definition:
a changed definition (in the meters file) is a new rollup, never mixed with the old.

Made in this order, holding the writers' lock (no insert of meter_events in flight): the
rollup's rows of any earlier attempt are deleted, the events stored so far are rolled up
(``INSERT ... SELECT``), then the view is created. Every event is thus counted once: the
ones before by the backfill, the ones after by the view. The view existing means the
rollup is complete, so queries use it only then. Replayed batches are dropped per view by
their token, as in every rollup (docs/durability.md). With several writer processes on one
ClickHouse server the lock is per process: define meters while only one writes, or the
rollup of events inserted at that moment may miss them (the raw path stays exact).
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from meterhouse.meters.definition import Meter
from meterhouse.store.base import Store

ROLLED_UP: Final = frozenset({"SUM", "COUNT", "AVG", "MIN", "MAX"})
TABLE: Final = "meter_hours"
_HOUR: Final = timedelta(hours=1)
_LONGEST: Final = timedelta(days=3660)  # longer ranges take the raw path


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal_args(steps: tuple[str | int, ...]) -> str:
    """JSONExtract key arguments as SQL literals (for a view's definition, which cannot
    take query parameters); indexes count from 1 there."""
    return ", ".join(
        str(step + 1 if step >= 0 else step) if isinstance(step, int) else quote(step)
        for step in steps
    )


def json_text(args: str) -> str:
    """The value at JSONExtract keys ``args`` of ``data`` as text: a string's content,
    else its JSON ('' when absent). Meter values and group values are read with it."""
    return (
        f"if(JSONType(data, {args}) = 'String', JSONExtractString(data, {args}), "
        f"JSONExtractRaw(data, {args}))"
    )


def rollup_key(meter: Meter) -> str:
    definition = "\x1f".join(
        [
            meter.event_type,
            meter.aggregation,
            meter.value_property.text if meter.value_property else "",
            *(f"{key}={path.text}" for key, path in meter.group_by.items()),
            meter.event_from.isoformat() if meter.event_from else "",
        ]
    )
    return f"{meter.meter_id}:{hashlib.sha256(definition.encode()).hexdigest()[:12]}"


def view_name(meter: Meter) -> str:
    return f"meter_hours_{meter.slug}_{rollup_key(meter).rsplit(':', 1)[1]}_mv"


def _select(meter: Meter) -> str:
    """The rollup of meter_events rows into meter_hours rows (view and backfill alike)."""
    where = [f"event_type = {quote(meter.event_type)}"]
    if meter.event_from is not None:
        at = meter.event_from.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        where.append(f"event_time >= toDateTime64({quote(at)}, 3, 'UTC')")
    if meter.value_property is not None and meter.aggregation != "COUNT":
        value = f"toDecimal128OrNull({json_text(literal_args(meter.value_property.steps))}, 12)"
        where.append(f"isNotNull({value})")
        number = f"assumeNotNull({value})"
    else:
        number = "toDecimal128(0, 12)"
    groups = [json_text(literal_args(path.steps)) for path in meter.group_by.values()]
    return (
        f"SELECT {quote(rollup_key(meter))} AS `rollup`, account_id, team_id, project_id, "
        f"subject, [{', '.join(groups)}]::Array(String) AS groups, "
        "toStartOfHour(event_time) AS hour, "
        f"sum({number}) AS value_sum, min({number}) AS value_min, max({number}) AS value_max, "
        f"count() AS events FROM meter_events WHERE {' AND '.join(where)} "
        "GROUP BY account_id, team_id, project_id, subject, groups, hour"
    )


def exists(store: Store, meter: Meter) -> bool:
    """Whether the meter's rollup is complete (its view exists)."""
    if meter.aggregation not in ROLLED_UP or not meter.meter_id:
        return False
    found = store.query(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() "
        "AND name = {name:String}",
        {"name": view_name(meter)},
    ).scalar()
    return bool(found)


def ensure(
    store: Store, meter: Meter, lock: threading.Lock | AbstractContextManager[object] | None
) -> bool:
    """Make the meter's rollup if it does not exist: backfill, then its view (see the
    module's docstring for why in that order, under ``lock``). True when one exists."""
    if meter.aggregation not in ROLLED_UP or not meter.meter_id:
        return False
    if exists(store, meter):
        return True
    with lock if lock is not None else nullcontext():
        if exists(store, meter):
            return True
        _drop_stale(store, meter)
        key = rollup_key(meter)
        store.command(f"DELETE FROM {TABLE} WHERE `rollup` = {{key:String}}", {"key": key})
        store.command(f"INSERT INTO {TABLE} {_select(meter)}")
        view = view_name(meter)
        store.command(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {TABLE} AS {_select(meter)}"
        )
    return True


def _drop_stale(store: Store, meter: Meter) -> None:
    """Views of the meter's earlier definitions (a meters file edited since): they would
    keep filling rollups no query reads."""
    stale = [
        str(row[0])
        for row in store.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND match(name, {pattern:String}) AND name != {current:String}",
            {
                "pattern": f"^meter_hours_{meter.slug}_[0-9a-f]{{12}}_mv$",
                "current": view_name(meter),
            },
        ).rows
    ]
    for name in stale:
        store.command(f"DROP VIEW IF EXISTS {name}")


def drop(store: Store, meter: Meter) -> None:
    """A removed meter's view and rows (a meter added again gets a new id and rollup)."""
    store.command(f"DROP VIEW IF EXISTS {view_name(meter)}")
    store.command(
        f"DELETE FROM {TABLE} WHERE `rollup` = {{key:String}}", {"key": rollup_key(meter)}
    )


def covers(
    start: datetime | None, end: datetime | None, window: str | None, zone: ZoneInfo
) -> bool:
    """Whether hourly rows answer a query exactly: a range of whole UTC hours, and windows
    that start on UTC hours in ``zone`` over it (every offset a whole number of hours)."""
    if start is None or end is None or window == "MINUTE" or end - start > _LONGEST:
        return False
    if any(moment != _floor_hour(moment) for moment in (start, end)):
        return False
    if window is None:
        return True
    day = start
    while day <= end + timedelta(days=1):
        offset = day.astimezone(zone).utcoffset()
        if offset is None or offset % _HOUR:
            return False
        day += timedelta(days=1)
    return True


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)
