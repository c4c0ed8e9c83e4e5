"""rate -> rows, column-wise: events become one Arrow table per target table.

The one row builder of every writer of events (HTTP CloudEvents and OTLP through the
Ingestor, the poller, the demo, reprice). Values go straight into one list per column
without a dict per row, amounts stay integers in units of 1e-12 until Arrow packs them as
Decimal128, times are epoch microseconds. What comes out is what the spool keeps and
what the writer inserts (``ClickHouseWriter.write_tables``), so a replay inserts the very
values that were priced when the request was answered and never prices anything again.

The simple per-event reference of these rows is tests/support/reference.py
(tests/ingest/test_columns.py compares the two on generated events). ``attributes``
is the event's data as JSON written compactly by msgspec (keys sorted, UTF-8).
"""

from __future__ import annotations

import itertools
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
from meterhouse.meters.billing import BillableMeters, quantities
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.rating.meter_rate import rate_meter
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
    "meter_events": pa.schema(
        [
            ("account_id", STRING),
            ("team_id", STRING),
            ("project_id", STRING),
            ("user_id", STRING),
            ("subject", STRING),
            ("event_type", STRING),
            ("source", STRING),
            ("event_id", STRING),
            ("event_time", TIME),
            ("data", STRING),
        ]
    ),
}
_RUNNING_RANK: Final = r.run_status_rank("running")
LINE_FIELDS: Final = (
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


def _arrow(
    schema: pa.Schema, columns: Sequence[Sequence[Any]], offsets: list[int] | None = None
) -> pa.Table:
    """Columns in schema order as an Arrow table; a list column's values are flat and
    ``offsets`` delimits each row's."""
    arrays = []
    for values, arrow_type in zip(columns, schema.types, strict=True):
        if pa.types.is_list(arrow_type):
            assert offsets is not None
            inner = _array(values, arrow_type.value_type)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), inner))
        else:
            arrays.append(_array(values, arrow_type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _from_rows(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.Table:
    """Row tuples in schema order as an Arrow table (``rows`` is never empty)."""
    return _arrow(schema, list(zip(*rows, strict=True)))


def _array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(arrow_type):
        return decimal_array(values, arrow_type)
    if arrow_type == TIME:
        return _times(np.asarray(values, dtype=np.int64))
    if pa.types.is_date32(arrow_type):
        return _days(np.asarray(values, dtype=np.int32))
    return pa.array(values, arrow_type)


def decimal_array(units: Sequence[int], arrow_type: pa.DataType = AMOUNT) -> pa.Array:
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
_Rated = tuple[int, r.Event, UnitRating, int, ZoneInfo]
"""(position in the request, event, its rating, its time in epoch µs, account zone)"""
_Timed = tuple[r.Event, int]  # (event, its time in epoch µs)


class ColumnBuilder:
    """Prices events and lays out their rows column-wise. Not shared between threads.

    One pass sorts the events by what they write; each table is then built one column
    at a time from the events of its kind. Model calls whose prices are cached are priced
    and laid out with numpy (``_Batched``); other usage is rated event by event with the
    rater's cached prices.
    """

    def __init__(
        self, accounts: AccountDirectory, rater: Rater, meters: BillableMeters | None = None
    ) -> None:
        self.accounts = accounts
        self.rater = rater
        self.meters = meters
        self._zones = _Zones()

    def build(self, events: Sequence[r.Event]) -> Built:
        rater = self.rater
        infos: dict[str, tuple[ZoneInfo, str]] = {}
        batched = _Batched()
        rated: list[_Rated] = []  # usage rated one by one
        runs: list[_Timed] = []
        logs: list[_Timed] = []
        definitions: list[_Timed] = []
        free: list[_Timed] = []
        for position, event in enumerate(events):
            account = event.account_id
            if isinstance(event.data, r.FreeFormData):  # raw, for meters
                us = epoch_microseconds(event.time)
                free.append((event, us))
                if self.meters is not None:
                    self._bill_meters(position, event, event.data, us, infos, rated)
                continue
            info = infos.get(account)
            if info is None:
                found = self.accounts.get(account)
                info = infos[account] = (found.time_zone, found.plan)
            zone, plan = info
            us = epoch_microseconds(event.time)
            data = event.data
            if isinstance(data, r.ModelCallData):
                known = rater.known_lines(data, plan, account)
                if known is not None:  # priced below with numpy, with the other such calls
                    day = self._zones.local_day(zone, us)
                    batched.add(known, event, data, us, day, position)
                    continue
            elif isinstance(data, r.JobLogData):
                logs.append((event, us))
                continue
            elif isinstance(data, r.JobDefinitionData):
                definitions.append((event, us))
                continue
            elif isinstance(data, r.JobRunData):
                runs.append((event, us))
            rating = rater.units(event, plan, us)
            if rating is not None:
                rated.append((position, event, rating, us, zone))
        tables: dict[str, pa.Table] = {}
        if definitions:
            tables["job_definition_events"] = _definition_table(definitions)
        if runs:
            tables["job_run_events"] = _run_table(runs)
        if logs:
            tables["job_logs"] = _log_table(logs)
        if free:
            tables["meter_events"] = _free_form_table(free)
        unpriced: Counter[tuple[str, str]] = Counter()
        usage = self._usage_table(batched, rated, infos)
        for _, _, rating, _, _ in rated:
            if not rating.priced:
                unpriced[rating.kind, rating.unpriced_reason] += 1
        if usage is not None:
            tables["usage_events"] = usage
        return Built(tables, unpriced)

    def _bill_meters(
        self,
        position: int,
        event: r.Event,
        data: r.FreeFormData,
        us: int,
        infos: dict[str, tuple[ZoneInfo, str]],
        rated: list[_Rated],
    ) -> None:
        """A usage row per additive meter of the event's type: kind ``meter``, charged
        under ``<event id>#<meter slug>`` so one event can feed several meters."""
        assert self.meters is not None
        meters = self.meters.of_type(event.type)
        if not meters:
            return
        info = infos.get(event.account_id)
        if info is None:
            found = self.accounts.get(event.account_id)
            info = infos[event.account_id] = (found.time_zone, found.plan)
        zone, plan = info
        for meter, quantity in quantities(meters, data.raw):
            rating = rate_meter(
                self.rater.book,
                account_id=event.account_id,
                plan=plan,
                slug=meter.slug,
                unit=meter.unit,
                quantity=quantity,
                version=self.rater.version,
            )
            charged = msgspec.structs.replace(event, id=f"{event.id}#{meter.slug}")
            rated.append((position, charged, rating, us, zone))

    def _usage_table(
        self, batched: _Batched, rated: list[_Rated], infos: dict[str, tuple[ZoneInfo, str]]
    ) -> pa.Table | None:
        """The usage rows in request order, so the writer keeps the first of repeated ids."""
        parts: list[pa.Table] = []
        positions: list[npt.NDArray[np.int64]] = []
        if batched.events:
            table, batched_positions, left = batched.table(self.rater.version)
            if table is not None:
                parts.append(table)
                positions.append(batched_positions)
            for event, us, position in left:  # what numpy could not price: one by one
                zone, plan = infos[event.account_id]
                rating = self.rater.units(event, plan, us)
                assert rating is not None  # a model call is always usage
                rated.append((position, event, rating, us, zone))
        if rated:
            rated.sort(key=lambda row: row[0])
            parts.append(self._rated_table(rated))
            positions.append(np.array([row[0] for row in rated], dtype=np.int64))
        if len(parts) < 2:
            return parts[0] if parts else None
        order = np.argsort(np.concatenate(positions), kind="stable")
        return pa.concat_tables(parts).take(pa.array(order))

    def _rated_table(self, rated: list[_Rated]) -> pa.Table:
        """usage_events rows of events rated one by one, column by column."""
        local_day = self._zones.local_day
        events = [row[1] for row in rated]
        ratings = [row[2] for row in rated]
        times = [row[3] for row in rated]
        datas = [event.data for event in events]
        lines = [line for rating in ratings for line in rating.lines]
        line_columns = list(zip(*lines, strict=True)) if lines else [()] * len(LINE_FIELDS)
        offsets = [0, *itertools.accumulate(len(rating.lines) for rating in ratings)]
        columns: dict[str, Sequence[Any]] = {
            "source": [event.source for event in events],
            "event_id": [r.charge_id(event) for event in events],
            "event_type": [event.type for event in events],
            "kind": [rating.kind for rating in ratings],
            "event_time": times,
            "local_date": [local_day(zone, us) for _, _, _, us, zone in rated],
            "account_id": [event.account_id for event in events],
            "team_id": [data.team_id for data in datas],
            "project_id": [data.project_id for data in datas],
            "user_id": [data.user_id for data in datas],
            "item": [rating.item for rating in ratings],
            "provider": [rating.provider for rating in ratings],
            "job_id": [getattr(data, "job_id", "") for data in datas],
            "run_id": [getattr(data, "run_id", "") for data in datas],
            **dict(zip(LINE_FIELDS, line_columns, strict=True)),
            "credits": [rating.credits for rating in ratings],
            "usd": [rating.usd for rating in ratings],
            "priced": [1 if rating.priced else 0 for rating in ratings],
            "unpriced_reason": [rating.unpriced_reason for rating in ratings],
            "price_version": [rating.price_version for rating in ratings],
            "attributes": [
                data.raw if isinstance(data, r.FreeFormData) else _ATTRIBUTES.encode(data)
                for data in datas
            ],
        }
        schema = SCHEMAS["usage_events"]
        return _arrow(schema, [columns[name] for name in schema.names], offsets)


def _definition_table(definitions: list[_Timed]) -> pa.Table:
    rows = [
        (
            event.account_id,
            data.team_id,
            data.project_id,
            data.job_id,
            data.kind,
            data.name,
            data.schedule,
            data.status,
            data.typical_duration_ms,
            1 if data.deleted else 0,
            us,
            event.source,
            event.id,
        )
        for event, us in definitions
        if isinstance(data := event.data, r.JobDefinitionData)
    ]
    return _from_rows(SCHEMAS["job_definition_events"], rows)


def _run_table(runs: list[_Timed]) -> pa.Table:
    rows: list[tuple[Any, ...]] = []
    for event, us in runs:
        data = event.data
        assert isinstance(data, r.JobRunData)
        head = (event.account_id, data.team_id, data.project_id, data.job_id, data.run_id)
        rank = r.run_status_rank(data.status)
        status = (data.kind, data.status, rank, us, event.source, event.id)
        rows.append((*head, *status, data.error_type, data.error_message))
        if data.started_at is not None and data.status != "running":
            # A final event that carries its start also records the start, so runs are
            # complete even when the platform never sent the `running` event.
            started = epoch_microseconds(data.started_at)
            start = (data.kind, "running", _RUNNING_RANK, started, event.source)
            rows.append((*head, *start, f"{event.id}#started", "", ""))
    return _from_rows(SCHEMAS["job_run_events"], rows)


def _log_table(logs: list[_Timed]) -> pa.Table:
    rows = [
        (
            us,
            event.account_id,
            data.team_id,
            data.project_id,
            data.job_id,
            data.run_id,
            data.kind,
            data.level,
            data.message,
            data.error_type,
            data.error_message,
            data.stack_trace,
            event.source,
            event.id,
        )
        for event, us in logs
        if isinstance(data := event.data, r.JobLogData)
    ]
    return _from_rows(SCHEMAS["job_logs"], rows)


def _free_form_table(events: list[_Timed]) -> pa.Table:
    rows = [
        (
            event.account_id,
            data.team_id,
            data.project_id,
            data.user_id,
            data.subject,
            event.type,
            event.source,
            event.id,
            us,
            data.raw,
        )
        for event, us in events
        if isinstance(data := event.data, r.FreeFormData)
    ]
    return _from_rows(SCHEMAS["meter_events"], rows)


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
