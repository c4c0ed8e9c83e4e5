"""rate -> rows, column-wise: events become one Arrow table per target table.

The one row builder of every writer of events (HTTP CloudEvents and OTLP through the
Ingestor, the poller, the demo, reprice). Values go straight into one list per column
without a dict per row, amounts stay integers in units of 1e-12 until Arrow packs them as
Decimal128, times are epoch microseconds. What comes out is what the spool keeps and
what the writer inserts (``ClickHouseWriter.write_tables``), so a replay inserts the very
values that were priced when the request was answered and never prices anything again.

The simple per-event reference of these rows is tests/support/reference.py
(tests/durability/test_columns.py compares the two on generated events). ``attributes``
is the event's data as JSON written compactly by msgspec (keys sorted, UTF-8).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.rating.rater import (
    ModelLines,
    Rater,
    UnitRating,
    batch_lines,
    epoch_microseconds,
)

AMOUNT: Final = pa.decimal128(38, 12)
TIME: Final = pa.timestamp("ms", tz="UTC")
STRING: Final = pa.string()
_US_PER_DAY: Final = 86_400_000_000
_ZONE_BUCKET_US: Final = 900_000_000  # 15 minutes: zone offsets change on these bounds
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ATTRIBUTES: Final = msgspec.json.Encoder(order="sorted")

# Column names and Arrow types per table, in the order event_rows writes them. The schema
# test checks each against the migrated table (meterhouse.store.arrow_types).
SCHEMAS: Final[dict[str, pa.Schema]] = {
    "usage_events": pa.schema(
        [
            ("source", STRING),
            ("event_id", STRING),
            ("event_type", STRING),
            ("kind", STRING),
            ("event_time", TIME),
            ("local_date", pa.date32()),
            ("account_id", STRING),
            ("team_id", STRING),
            ("project_id", STRING),
            ("user_id", STRING),
            ("item", STRING),
            ("provider", STRING),
            ("job_id", STRING),
            ("run_id", STRING),
            ("lines.usage_type", pa.list_(STRING)),
            ("lines.quantity", pa.list_(AMOUNT)),
            ("lines.unit", pa.list_(STRING)),
            ("lines.unit_price_credits", pa.list_(AMOUNT)),
            ("lines.unit_price_usd", pa.list_(AMOUNT)),
            ("lines.credits", pa.list_(AMOUNT)),
            ("lines.usd", pa.list_(AMOUNT)),
            ("credits", AMOUNT),
            ("usd", AMOUNT),
            ("priced", pa.uint8()),
            ("unpriced_reason", STRING),
            ("price_version", STRING),
            ("attributes", STRING),
        ]
    ),
    "job_definition_events": pa.schema(
        [
            ("account_id", STRING),
            ("team_id", STRING),
            ("project_id", STRING),
            ("job_id", STRING),
            ("kind", STRING),
            ("name", STRING),
            ("schedule", STRING),
            ("status", STRING),
            ("typical_duration_ms", pa.uint64()),
            ("is_deleted", pa.uint8()),
            ("event_time", TIME),
            ("source", STRING),
            ("event_id", STRING),
        ]
    ),
    "job_run_events": pa.schema(
        [
            ("account_id", STRING),
            ("team_id", STRING),
            ("project_id", STRING),
            ("job_id", STRING),
            ("run_id", STRING),
            ("kind", STRING),
            ("status", STRING),
            ("status_rank", pa.uint8()),
            ("event_time", TIME),
            ("source", STRING),
            ("event_id", STRING),
            ("error_type", STRING),
            ("error_message", STRING),
        ]
    ),
    "job_logs": pa.schema(
        [
            ("log_time", TIME),
            ("account_id", STRING),
            ("team_id", STRING),
            ("project_id", STRING),
            ("job_id", STRING),
            ("run_id", STRING),
            ("kind", STRING),
            ("level", STRING),
            ("message", STRING),
            ("error_type", STRING),
            ("error_message", STRING),
            ("stack_trace", STRING),
            ("source", STRING),
            ("event_id", STRING),
        ]
    ),
}
_LINE_FIELDS: Final = (
    "lines.usage_type",
    "lines.quantity",
    "lines.unit",
    "lines.unit_price_credits",
    "lines.unit_price_usd",
    "lines.credits",
    "lines.usd",
)


@dataclass
class Built:
    """One request's rows: an Arrow table per target table, and what was not priced."""

    tables: dict[str, pa.Table]
    unpriced: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(table.num_rows for table in self.tables.values())


class _Zones:
    """Local dates without a datetime per event: offsets cached per 15-minute bucket."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, int], int] = {}

    def local_day(self, zone: ZoneInfo, us: int) -> int:
        key = (zone.key, us // _ZONE_BUCKET_US)
        offset = self._offsets.get(key)
        if offset is None:
            offset = self._offset(zone, key[1])
            if offset is None:  # a transition inside the bucket: no shortcut for it
                moment = _EPOCH + timedelta(microseconds=us)
                return (moment.astimezone(zone).date() - _EPOCH.date()).days
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            self._offsets[key] = offset
        return (us + offset) // _US_PER_DAY

    @staticmethod
    def _offset(zone: ZoneInfo, bucket: int) -> int | None:
        start = _EPOCH + timedelta(microseconds=bucket * _ZONE_BUCKET_US)
        end = start + timedelta(microseconds=_ZONE_BUCKET_US - 1)
        first, last = start.astimezone(zone).utcoffset(), end.astimezone(zone).utcoffset()
        if first is None or first != last:
            return None
        micros: int = first // timedelta(microseconds=1)
        return micros


class _Table:
    """Column lists of one table, in schema order."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def arrow(self, offsets: list[int] | None = None) -> pa.Table:
        arrays = []
        for name, arrow_type in zip(self.schema.names, self.schema.types, strict=True):
            values = self.columns[name]
            if pa.types.is_list(arrow_type):
                assert offsets is not None
                inner = _array(values, arrow_type.value_type)
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), inner))
            else:
                arrays.append(_array(values, arrow_type))
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _array(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(arrow_type):
        return decimal_array(values, arrow_type)
    if arrow_type == TIME:
        return _times(np.asarray(values, dtype=np.int64))
    if pa.types.is_date32(arrow_type):
        return _days(np.asarray(values, dtype=np.int32))
    return pa.array(values, arrow_type)


def decimal_array(units: list[int], arrow_type: pa.DataType = AMOUNT) -> pa.Array:
    """Integers in units of the type's scale as Decimal128, without a Decimal per value."""
    count = len(units)
    try:
        low = np.asarray(units, dtype=np.int64)
        words = np.empty((count, 2), dtype=np.int64)
        words[:, 0] = low
        words[:, 1] = low >> 63  # two's complement sign extension to 128 bits
        buffer = pa.py_buffer(words)
    except OverflowError:  # beyond 9.2e6 credits or tokens in one value: the slow way
        mask = (1 << 64) - 1
        wide = np.array(
            [(value & mask, (value >> 64) & mask) for value in units], dtype=np.uint64
        ).reshape(count, 2)
        buffer = pa.py_buffer(wide)
    return pa.Array.from_buffers(arrow_type, count, [None, buffer])


Clock = Callable[[], float]


class ColumnBuilder:
    """Prices events and lays out their rows column-wise. Not shared between threads."""

    def __init__(self, accounts: AccountDirectory, rater: Rater) -> None:
        self.accounts = accounts
        self.rater = rater
        self._zones = _Zones()

    def build(self, events: Sequence[r.Event]) -> Built:
        usage = _Table(SCHEMAS["usage_events"])
        definitions = _Table(SCHEMAS["job_definition_events"])
        runs = _Table(SCHEMAS["job_run_events"])
        logs = _Table(SCHEMAS["job_logs"])
        offsets = [0]
        unpriced: Counter[tuple[str, str]] = Counter()
        infos: dict[str, tuple[ZoneInfo, str]] = {}
        batched = _Batched()
        rater = self.rater
        positions: list[int] = []  # of the usage rows made one by one, in the request
        for position, event in enumerate(events):
            account = event.account_id
            info = infos.get(account)
            if info is None:
                found = self.accounts.get(account)
                info = infos[account] = (found.time_zone, found.plan)
            zone, plan = info
            us = epoch_microseconds(event.time)
            data = event.data
            if type(data) is r.ModelCallData:
                known = rater.known_lines(data, plan, account)
                if known is not None:  # priced below with numpy, with the other such calls
                    day = self._zones.local_day(zone, us)
                    batched.add(known, event, data, us, day, position)
                    continue
            rating = rater.units(event, plan, us)
            if rating is not None:
                if not rating.priced:
                    unpriced[rating.kind, rating.unpriced_reason] += 1
                self._usage_row(usage, offsets, event, rating, us, zone)
                positions.append(position)
            if isinstance(data, r.ModelCallData | r.ApiCallData):
                continue
            if isinstance(data, r.JobRunData):
                self._run_rows(runs.columns, event, data, us)
            elif isinstance(data, r.JobLogData):
                _append(
                    logs.columns,
                    log_time=us,
                    account_id=account,
                    team_id=data.team_id,
                    project_id=data.project_id,
                    job_id=data.job_id,
                    run_id=data.run_id,
                    kind=data.kind,
                    level=data.level,
                    message=data.message,
                    error_type=data.error_type,
                    error_message=data.error_message,
                    stack_trace=data.stack_trace,
                    source=event.source,
                    event_id=event.id,
                )
            elif isinstance(data, r.JobDefinitionData):
                _append(
                    definitions.columns,
                    account_id=account,
                    team_id=data.team_id,
                    project_id=data.project_id,
                    job_id=data.job_id,
                    kind=data.kind,
                    name=data.name,
                    schedule=data.schedule,
                    status=data.status,
                    typical_duration_ms=data.typical_duration_ms,
                    is_deleted=1 if data.deleted else 0,
                    event_time=us,
                    source=event.source,
                    event_id=event.id,
                )
        usage_parts: list[pa.Table] = []
        batched_positions: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if batched.events:
            table, batched_positions, left = batched.table(rater.version)
            if table is not None:
                usage_parts.append(table)
            for event, us, position in left:  # what numpy could not price: one by one
                zone, plan = infos[event.account_id]
                rating = rater.units(event, plan, us)
                assert rating is not None  # a model call is always usage
                self._usage_row(usage, offsets, event, rating, us, zone)
                positions.append(position)
        if len(usage):
            usage_parts.insert(0, usage.arrow(offsets))
        usage_table: pa.Table | None = None
        if len(usage_parts) == 1 and (not batched.events or not len(usage)):
            usage_table = usage_parts[0]  # made in request order already
        elif usage_parts:
            # Back to request order, so the writer keeps the first of repeated ids.
            order = np.argsort(
                np.concatenate([np.array(positions, dtype=np.int64), batched_positions]),
                kind="stable",
            )
            usage_table = pa.concat_tables(usage_parts).take(pa.array(order))
        tables: dict[str, pa.Table] = {}
        for name, table in (
            ("job_definition_events", definitions),
            ("job_run_events", runs),
            ("job_logs", logs),
        ):
            if len(table):
                tables[name] = table.arrow()
        if usage_table is not None:
            tables["usage_events"] = usage_table
        return Built(tables, unpriced)

    def _usage_row(
        self,
        usage: _Table,
        offsets: list[int],
        event: r.Event,
        rating: UnitRating,
        us: int,
        zone: ZoneInfo,
    ) -> None:
        u = usage.columns
        data = event.data
        u["source"].append(event.source)
        u["event_id"].append(r.charge_id(event))
        u["event_type"].append(event.type)
        u["kind"].append(rating.kind)
        u["event_time"].append(us)
        u["local_date"].append(self._zones.local_day(zone, us))
        u["account_id"].append(event.account_id)
        u["team_id"].append(data.team_id)
        u["project_id"].append(data.project_id)
        u["user_id"].append(data.user_id)
        u["item"].append(rating.item)
        u["provider"].append(rating.provider)
        u["job_id"].append(getattr(data, "job_id", ""))
        u["run_id"].append(getattr(data, "run_id", ""))
        line_columns = [u[name] for name in _LINE_FIELDS]
        for line in rating.lines:
            for column, value in zip(line_columns, line, strict=True):
                column.append(value)
        offsets.append(offsets[-1] + len(rating.lines))
        u["credits"].append(rating.credits)
        u["usd"].append(rating.usd)
        u["priced"].append(1 if rating.priced else 0)
        u["unpriced_reason"].append(rating.unpriced_reason)
        u["price_version"].append(rating.price_version)
        u["attributes"].append(_ATTRIBUTES.encode(data))

    @staticmethod
    def _run_rows(
        columns: dict[str, list[Any]], event: r.Event, data: r.JobRunData, us: int
    ) -> None:
        row = {
            "account_id": event.account_id,
            "team_id": data.team_id,
            "project_id": data.project_id,
            "job_id": data.job_id,
            "run_id": data.run_id,
            "kind": data.kind,
            "status": data.status,
            "status_rank": r.run_status_rank(data.status),
            "event_time": us,
            "source": event.source,
            "event_id": event.id,
            "error_type": data.error_type,
            "error_message": data.error_message,
        }
        _append(columns, **row)
        if data.started_at is not None and data.status != "running":
            # As event_rows: a final event that carries its start also records the start.
            _append(
                columns,
                **{
                    **row,
                    "status": "running",
                    "status_rank": r.run_status_rank("running"),
                    "event_time": epoch_microseconds(data.started_at),
                    "event_id": f"{event.id}#started",
                    "error_type": "",
                    "error_message": "",
                },
            )


def _append(columns: dict[str, list[Any]], **values: Any) -> None:
    for name, value in values.items():
        columns[name].append(value)


class _Batched:
    """Model calls whose prices are cached: their usage rows are made with numpy at once."""

    def __init__(self) -> None:
        self.entries: list[ModelLines] = []
        self.entry_index: dict[int, int] = {}
        self.entry_of: list[int] = []
        self.events: list[r.Event] = []
        self.calls: list[r.ModelCallData] = []
        self.times: list[int] = []
        self.days: list[int] = []
        self.positions: list[int] = []

    def add(
        self,
        known: ModelLines,
        event: r.Event,
        data: r.ModelCallData,
        us: int,
        day: int,
        position: int,
    ) -> None:
        index = self.entry_index.get(id(known))
        if index is None:
            index = self.entry_index[id(known)] = len(self.entries)
            self.entries.append(known)
        self.entry_of.append(index)
        self.events.append(event)
        self.calls.append(data)
        self.times.append(us)
        self.days.append(day)
        self.positions.append(position)

    def table(
        self, price_version: str
    ) -> tuple[pa.Table | None, npt.NDArray[np.int64], list[tuple[r.Event, int, int]]]:
        """The usage_events rows numpy could price with their positions in the request,
        and the calls it could not (event, time, position)."""
        calls = self.calls
        tokens = np.array(
            [
                [c.input_tokens for c in calls],
                [c.output_tokens for c in calls],
                [c.cache_read_tokens for c in calls],
                [c.cache_write_tokens for c in calls],
                [c.reasoning_tokens for c in calls],
            ],
            dtype=np.int64,
        ).T
        entry_of = np.array(self.entry_of, dtype=np.intp)
        lines, ok = batch_lines(self.entries, entry_of, tokens)
        kept = np.nonzero(ok)[0]
        left = [(self.events[i], self.times[i], self.positions[i]) for i in np.nonzero(~ok)[0]]
        positions = np.array(self.positions, dtype=np.int64)[kept]
        if len(kept) == 0:
            return None, positions, left
        if len(kept) < len(calls):
            events = [self.events[i] for i in kept]
            calls = [calls[i] for i in kept]
            times = np.array(self.times, dtype=np.int64)[kept]
            days = np.array(self.days, dtype=np.int32)[kept]
        else:
            events = self.events
            times = np.array(self.times, dtype=np.int64)
            days = np.array(self.days, dtype=np.int32)
        items = np.array([e.item for e in self.entries], dtype=object)[entry_of[kept]]
        providers = np.array([e.provider for e in self.entries], dtype=object)[entry_of[kept]]
        count = len(events)
        offsets = pa.array(lines.offsets, pa.int32())

        def listed(values: pa.Array) -> pa.Array:
            return pa.ListArray.from_arrays(offsets, values)

        columns: dict[str, pa.Array] = {
            "source": pa.array([e.source for e in events], STRING),
            "event_id": pa.array([e.id for e in events], STRING),
            "event_type": _constant(r.MODEL_CALL, count),
            "kind": _constant("model", count),
            "event_time": _times(times),
            "local_date": _days(days),
            "account_id": pa.array([e.account_id for e in events], STRING),
            "team_id": pa.array([d.team_id for d in calls], STRING),
            "project_id": pa.array([d.project_id for d in calls], STRING),
            "user_id": pa.array([d.user_id for d in calls], STRING),
            "item": pa.array(items, STRING),
            "provider": pa.array(providers, STRING),
            "job_id": _constant("", count),
            "run_id": _constant("", count),
            "lines.usage_type": listed(pa.array(lines.usage_types, STRING)),
            "lines.quantity": listed(_decimal_tokens(lines.tokens)),
            "lines.unit": listed(pa.array(lines.units, STRING)),
            "lines.unit_price_credits": listed(_decimal_int64(lines.unit_price_credits)),
            "lines.unit_price_usd": listed(_decimal_int64(lines.unit_price_usd)),
            "lines.credits": listed(_decimal_int64(lines.credits)),
            "lines.usd": listed(_decimal_int64(lines.usd)),
            "credits": _decimal_int64(lines.credits_total),
            "usd": _decimal_int64(lines.usd_total),
            "priced": pa.array(np.ones(count, dtype=np.uint8), pa.uint8()),
            "unpriced_reason": _constant("", count),
            "price_version": _constant(price_version, count),
            "attributes": pa.array([_ATTRIBUTES.encode(d) for d in calls], STRING),
        }
        schema = SCHEMAS["usage_events"]
        table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
        return table, positions, left


def _constant(value: str, count: int) -> pa.Array:
    """``count`` times the same string, laid out with numpy (no Python object per row)."""
    encoded = value.encode()
    offsets = np.arange(0, (count + 1) * len(encoded), len(encoded) or 1, dtype=np.int32)
    if not encoded:
        offsets = np.zeros(count + 1, dtype=np.int32)
    data = np.frombuffer(encoded * count, dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    return pa.Array.from_buffers(STRING, count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _times(micros: npt.NDArray[np.int64]) -> pa.Array:
    """Epoch microseconds as the millisecond timestamps of DateTime64(3)."""
    millis = micros // 1000
    return pa.Array.from_buffers(TIME, len(millis), [None, pa.py_buffer(millis)])


def _days(days: npt.NDArray[np.int32]) -> pa.Array:
    return pa.Array.from_buffers(pa.date32(), len(days), [None, pa.py_buffer(days)])


def _decimal_int64(values: npt.NDArray[np.int64]) -> pa.Array:
    words = np.empty((len(values), 2), dtype=np.int64)
    words[:, 0] = values
    words[:, 1] = values >> 63
    return pa.Array.from_buffers(AMOUNT, len(values), [None, pa.py_buffer(words)])


def _decimal_tokens(tokens: npt.NDArray[np.int64]) -> pa.Array:
    """Token counts (0..1e8) as Decimal(38, 12): tokens * 10**12 split into two words."""
    scaled = tokens.astype(np.uint64) * np.uint64(5**12)  # < 2**55; times 2**12 is 10**12
    words = np.empty((len(tokens), 2), dtype=np.uint64)
    words[:, 0] = scaled << np.uint64(12)
    words[:, 1] = scaled >> np.uint64(52)
    return pa.Array.from_buffers(AMOUNT, len(tokens), [None, pa.py_buffer(words)])
