"""Meters over meter_events: one SQL statement per question, values exact until the answer.

A meter is evaluated when it is queried, over the raw events (so a meter added today
counts last month's events, as in OpenMeter). JSONPaths become JSONExtract key
arguments passed as query parameters: no text of a meter or a request is ever spliced
into SQL. Numbers are read as ``Decimal(38, 12)`` from the JSON text (a number, or a string
holding one, as OpenMeter accepts); a value that is no number is left out of the meter,
as OpenMeter leaves out events it cannot read.

Windows are computed by ClickHouse in the requested time zone (a DAY across a DST change
is 23 or 25 hours long); their ends by :func:`window_end` in the same zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterhouse.meters import rollup
from meterhouse.meters.definition import NUMERIC, JsonPath, Meter, MeterError
from meterhouse.store.base import Store

WINDOWS: Final = ("MINUTE", "HOUR", "DAY", "MONTH")
MAX_ROWS: Final = 100_000
_ZONE_NAME: Final = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    """Whose events a reader sees: one account ('' = every account), narrowed by a SQL
    condition on team_id and project_id (meterhouse.access.visibility)."""

    account_id: str = ""
    condition: str = "1 = 1"
    params: dict[str, Any] = field(default_factory=dict)

    def sql(self) -> tuple[str, dict[str, Any]]:
        if not self.account_id:
            return self.condition, dict(self.params)
        return (
            f"account_id = {{mh_account:String}} AND {self.condition}",
            {**self.params, "mh_account": self.account_id},
        )


@dataclass(frozen=True)
class MeterQuery:
    start: datetime | None = None
    end: datetime | None = None
    window: str | None = None
    zone: str = "UTC"
    subjects: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    advanced: dict[str, Any] = field(default_factory=dict)  # group -> OpenMeter FilterString


_COMPARE: Final = {
    "$eq": "=",
    "$ne": "!=",
    "$gt": ">",
    "$gte": ">=",
    "$lt": "<",
    "$lte": "<=",
    "$like": "LIKE",
    "$nlike": "NOT LIKE",
    "$ilike": "ILIKE",
    "$nilike": "NOT ILIKE",
}
_FIELD: Final = "advancedMeterGroupByFilters"
MAX_FILTER_DEPTH: Final = 4


def filter_sql(
    column: str, spec: object, params: dict[str, Any], prefix: str, depth: int = 0
) -> str:
    """OpenMeter's FilterString ($eq, $ne, $in, $nin, $like ..., $and, $or) as a condition
    on ``column``; every value a query parameter."""
    if not isinstance(spec, dict) or depth > MAX_FILTER_DEPTH:
        raise MeterError(
            _FIELD, f"a filter is an object of operators, nested at most {MAX_FILTER_DEPTH} deep"
        )
    parts: list[str] = []
    for index, (operator, value) in enumerate(sorted(spec.items())):
        name = f"{prefix}_{index}"
        if value is None:
            continue
        if operator in _COMPARE and isinstance(value, str):
            parts.append(f"{column} {_COMPARE[operator]} {{{name}:String}}")
            params[name] = value
        elif (
            operator in ("$in", "$nin")
            and isinstance(value, list)
            and all(isinstance(v, str) for v in value)
        ):
            parts.append(
                f"{column} {'NOT IN' if operator == '$nin' else 'IN'} {{{name}:Array(String)}}"
            )
            params[name] = value
        elif operator in ("$and", "$or") and isinstance(value, list) and value:
            inner = [
                filter_sql(column, item, params, f"{name}_{j}", depth + 1)
                for j, item in enumerate(value)
            ]
            parts.append("(" + (" AND " if operator == "$and" else " OR ").join(inner) + ")")
        else:
            known = ", ".join([*_COMPARE, "$in", "$nin", "$and", "$or"])
            raise MeterError(
                _FIELD, f"{str(operator)[:40]!r} with {type(value).__name__}: use {known}"
            )
    return "(" + " AND ".join(parts) + ")" if parts else "1 = 1"


@dataclass(frozen=True)
class Row:
    window_start: datetime
    window_end: datetime
    subject: str | None
    groups: dict[str, str | None]
    value: Decimal | int | float

    def as_openmeter(self) -> dict[str, Any]:
        return {
            "value": float(self.value) if isinstance(self.value, Decimal) else self.value,
            "windowStart": rfc3339(self.window_start),
            "windowEnd": rfc3339(self.window_end),
            "subject": self.subject,
            "groupBy": self.groups,
        }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def zone(name: str) -> ZoneInfo:
    if not _ZONE_NAME.match(name):
        raise MeterError("windowTimeZone", f"{name[:64]!r} is not an IANA time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MeterError("windowTimeZone", f"{name!r} is not an IANA time zone") from exc


def _path_args(prefix: str, path: JsonPath, params: dict[str, Any]) -> str:
    parts: list[str] = []
    for index, step in enumerate(path.steps):
        name = f"{prefix}_{index}"
        if isinstance(step, int):
            parts.append(f"{{{name}:Int64}}")
            params[name] = step + 1 if step >= 0 else step  # JSONExtract counts from 1
        else:
            parts.append(f"{{{name}:String}}")
            params[name] = step
    return ", ".join(parts)


def text_expr(prefix: str, path: JsonPath, params: dict[str, Any]) -> str:
    """The value at ``path`` as text: a string's content, else its JSON ('' if absent)."""
    return rollup.json_text(_path_args(prefix, path, params))


def number_expr(prefix: str, path: JsonPath, params: dict[str, Any]) -> str:
    """The value at ``path`` as Decimal(38, 12), NULL when it is no number."""
    return f"toDecimal128OrNull({text_expr(prefix, path, params)}, 12)"


def _aggregate(meter: Meter, params: dict[str, Any]) -> tuple[str, str]:
    """(aggregate expression, the condition an event must meet to count)."""
    if meter.aggregation == "COUNT" or meter.value_property is None:
        return "count()", "1 = 1"
    if meter.aggregation == "UNIQUE_COUNT":
        text = text_expr("mh_value", meter.value_property, params)
        return f"uniqExact({text})", f"{text} != ''"
    number = number_expr("mh_value", meter.value_property, params)
    function = {
        "SUM": "sum({v})",
        "AVG": "avg({v})",
        "MIN": "min({v})",
        "MAX": "max({v})",
        "LATEST": "argMax({v}, (event_time, event_id))",
    }[meter.aggregation]
    return function.format(v=f"assumeNotNull({number})"), f"isNotNull({number})"


def _window_expr(window: str | None, tz: str, time: str = "event_time") -> str:
    quoted = "'" + tz + "'"  # checked against _ZONE_NAME and the zone database
    local = f"toTimeZone({time}, {quoted})"
    return {
        None: "toUInt32(0)",
        "MINUTE": f"toUnixTimestamp(toStartOfMinute({time}))",
        "HOUR": f"toUnixTimestamp(toStartOfHour({local}))",
        "DAY": f"toUnixTimestamp(toStartOfDay({local}))",
        "MONTH": f"toUnixTimestamp(toDateTime(toStartOfMonth({local}), {quoted}))",
    }[window]


def window_end(start: datetime, window: str, tz: ZoneInfo) -> datetime:
    """The end of the window starting at ``start``: the next local day or month start in
    ``tz`` (23 or 25 hours across a DST change), or one hour or minute later."""
    if window == "MINUTE":
        return start + timedelta(minutes=1)
    if window == "HOUR":
        return start + timedelta(hours=1)
    local = start.astimezone(tz)
    if window == "DAY":
        day = local.date() + timedelta(days=1)
    else:
        day = (local.date().replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _base_where(
    meter: Meter, scope: Scope, start: datetime | None, end: datetime | None
) -> tuple[list[str], dict[str, Any]]:
    condition, params = scope.sql()
    where = ["event_type = {mh_type:String}", condition]
    params["mh_type"] = meter.event_type
    since = max(filter(None, (start, meter.event_from)), default=None)
    if since is not None:
        where.append("event_time >= {mh_from:DateTime64(3, 'UTC')}")
        params["mh_from"] = since
    if end is not None:
        where.append("event_time < {mh_to:DateTime64(3, 'UTC')}")
        params["mh_to"] = end
    return where, params


def run_query(
    store: Store, meter: Meter, scope: Scope, query: MeterQuery, now: datetime
) -> list[Row]:
    """The meter's values per window, subject (when asked) and group: from its hourly
    rollup when that answers the query exactly (rollup.covers), else from the events."""
    tz = zone(query.zone)
    for key in (*query.group_by, *query.filters, *query.advanced):
        if key != "subject" and key not in meter.group_by:
            known = ", ".join(["subject", *meter.group_by]) or "subject"
            raise MeterError("groupBy", f"meter {meter.slug} has no group {key!r}; it has {known}")
    if query.window is not None and query.window not in WINDOWS:
        raise MeterError("windowSize", f"must be one of {', '.join(WINDOWS)}")
    end = query.end or now
    hourly = rollup.covers(query.start, query.end, query.window, tz) and rollup.exists(store, meter)
    source = _hourly(meter, scope, query) if hourly else _raw(meter, scope, query, end)
    where, params = source.where, source.params
    by_subject = "subject" in query.group_by or bool(query.subjects)
    if query.subjects:
        where.append("subject IN {mh_subjects:Array(String)}")
        params["mh_subjects"] = list(query.subjects)
    groups = [key for key in query.group_by if key != "subject"]
    group_columns = [source.group(f"mh_group{index}", key) for index, key in enumerate(groups)]
    for index, (key, values) in enumerate(sorted(query.filters.items())):
        if key == "subject":
            where.append(f"subject IN {{mh_filter{index}:Array(String)}}")
        else:
            column = source.group(f"mh_filterpath{index}", key)
            where.append(f"{column} IN {{mh_filter{index}:Array(String)}}")
        params[f"mh_filter{index}"] = list(values)
    for index, (key, spec) in enumerate(sorted(query.advanced.items())):
        column = "subject" if key == "subject" else source.group(f"mh_advpath{index}", key)
        where.append(filter_sql(column, spec, params, f"mh_adv{index}"))
    keys = ["window_start", *(["subject"] if by_subject else [])]
    keys += [f"g{index}" for index in range(len(groups))]
    selected = [
        f"{_window_expr(query.window, query.zone, source.time)} AS window_start",
        *(["subject"] if by_subject else []),
        *(f"{column} AS g{index}" for index, column in enumerate(group_columns)),
        f"{source.value} AS value",
        f"min({source.time}) AS first_time",
    ]
    sql = (
        f"SELECT {', '.join(selected)} FROM {source.table} WHERE {' AND '.join(where)} "
        f"GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)} LIMIT {MAX_ROWS + 1}"
    )
    rows = store.query(sql, params).rows
    if len(rows) > MAX_ROWS:
        raise MeterError(
            "windowSize", f"more than {MAX_ROWS} rows: query a shorter range or larger windows"
        )
    found: list[Row] = []
    for row in rows:
        at = 1
        subject = str(row[at]) if by_subject else None
        at += 1 if by_subject else 0
        named = {key: (str(row[at + i]) or None) for i, key in enumerate(groups)}
        amount, first_time = row[-2], row[-1]
        if query.window is None:
            start = query.start or _aware(first_time)
            stop = end
        else:
            start = _EPOCH + timedelta(seconds=int(row[0]))
            stop = window_end(start, query.window, tz)
        found.append(Row(start, stop, subject, named, _number(amount)))
    return found


@dataclass
class _Source:
    """Where a query reads: the events, or a meter's hourly rollup."""

    table: str
    time: str  # the column windows and ranges are computed on
    value: str  # the aggregate
    where: list[str]
    params: dict[str, Any]
    group: Callable[[str, str], str]  # (parameter prefix, group key) -> its column


def _raw(meter: Meter, scope: Scope, query: MeterQuery, end: datetime) -> _Source:
    where, params = _base_where(meter, scope, query.start, end)
    value, counted = _aggregate(meter, params)
    where.append(counted)

    def group(prefix: str, key: str) -> str:
        return text_expr(prefix, meter.group_by[key], params)

    return _Source("meter_events", "event_time", value, where, params, group)


def _hourly(meter: Meter, scope: Scope, query: MeterQuery) -> _Source:
    condition, params = scope.sql()
    where = ["`rollup` = {mh_rollup:String}", condition]
    params["mh_rollup"] = rollup.rollup_key(meter)
    if query.start is not None:
        where.append("hour >= {mh_from:DateTime64(3, 'UTC')}")
        params["mh_from"] = query.start
    if query.end is not None:
        where.append("hour < {mh_to:DateTime64(3, 'UTC')}")
        params["mh_to"] = query.end
    value = {
        "SUM": "sum(value_sum)",
        "COUNT": "sum(events)",
        "AVG": "toFloat64(sum(value_sum)) / sum(events)",
        "MIN": "min(value_min)",
        "MAX": "max(value_max)",
    }[meter.aggregation]
    position = {key: index + 1 for index, key in enumerate(meter.group_by)}

    def group(_prefix: str, key: str) -> str:
        return f"groups[{position[key]}]"

    return _Source(rollup.TABLE, "hour", value, where, params, group)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _number(value: Any) -> Decimal | int | float:
    if isinstance(value, Decimal):
        return value.normalize() if value == value.to_integral() else value
    if isinstance(value, (int, float)):
        return value
    return Decimal(str(value))


def subjects(
    store: Store, meter: Meter, scope: Scope, start: datetime | None, end: datetime | None
) -> list[str]:
    where, params = _base_where(meter, scope, start, end)
    sql = f"SELECT DISTINCT subject FROM meter_events WHERE {' AND '.join(where)} ORDER BY subject"
    return [str(row[0]) for row in store.query(f"{sql} LIMIT {MAX_ROWS}", params).rows]


def group_values(
    store: Store,
    meter: Meter,
    key: str,
    scope: Scope,
    start: datetime | None,
    end: datetime | None,
) -> list[str]:
    if key == "subject":
        return subjects(store, meter, scope, start, end)
    path = meter.group_by.get(key)
    if path is None:
        known = ", ".join(["subject", *meter.group_by])
        raise MeterError("groupByKey", f"meter {meter.slug} has no group {key!r}; it has {known}")
    where, params = _base_where(meter, scope, start, end)
    column = text_expr("mh_group", path, params)
    sql = (
        f"SELECT DISTINCT {column} AS v FROM meter_events WHERE {' AND '.join(where)} "
        f"AND v != '' ORDER BY v LIMIT {MAX_ROWS}"
    )
    return [str(row[0]) for row in store.query(sql, params).rows]


def value_problem(store: Store, meter: Meter) -> str | None:
    """Why the events stored already cannot feed this meter (a SUM over text, a
    UNIQUE_COUNT over objects), with an example; None when they can (or there are none)."""
    if meter.value_property is None:
        return None
    params: dict[str, Any] = {"mh_type": meter.event_type}
    args = _path_args("mh_value", meter.value_property, params)
    kind = f"JSONType(data, {args})"
    if meter.aggregation in NUMERIC:
        text = text_expr("mh_value", meter.value_property, params)
        numbers = "('Null', 'Int64', 'UInt64', 'Double')"
        bad = f"{kind} NOT IN {numbers} AND isNull(toDecimal128OrNull({text}, 12))"
        expected = "a number (or a string holding one)"
    else:
        bad = f"{kind} IN ('Object', 'Array', 'Bool')"
        expected = "a string or a number"
    sql = (
        f"SELECT count(), any(JSONExtractRaw(data, {args})) FROM meter_events "
        f"WHERE event_type = {{mh_type:String}} AND JSONHas(data, {args}) AND {bad}"
    )
    count, example = store.query(sql, params).rows[0]
    if not count:
        return None
    return (
        f"{count} stored {meter.event_type} events have {str(example)[:60]} at "
        f"{meter.value_property.text}; {meter.aggregation} needs {expected}"
    )
