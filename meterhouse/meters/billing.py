"""Which meters bill an event as it arrives, for the column builder.

Additive meters (SUM, COUNT) are billed event by event at ingest, like model calls: each
event of such a meter becomes a usage row (kind ``meter``, item the slug, the meter's
unit), priced by meterhouse/rating/meter_rate.py, so it flows into the ledger, balances,
budgets, statements and dashboards. The meters are read from the registry at most every
few seconds; while the store cannot be read the last ones read are used, so acceptance
never waits on ClickHouse (the spool exists for that).
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Final

import msgspec

from meterhouse.errors import StoreError
from meterhouse.meters.definition import JsonPath, Meter
from meterhouse.meters.registry import Registry
from meterhouse.rating.meter_rate import BILLED_AGGREGATIONS, event_quantity

REFRESH_SECONDS: Final = 5.0
_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)  # numbers exactly as written


class BillableMeters:
    """The additive meters of each event type, refreshed from the registry."""

    def __init__(self, registry: Registry, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self._by_type: dict[str, list[Meter]] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the meters now (after a meter is added or removed through this process)."""
        meters = self.registry.list()
        by_type: dict[str, list[Meter]] = {}
        for meter in meters:
            if meter.aggregation in BILLED_AGGREGATIONS:
                by_type.setdefault(meter.event_type, []).append(meter)
        with self._lock:
            self._by_type = by_type
            self._read_at = time.monotonic()

    def of_type(self, event_type: str) -> list[Meter]:
        if time.monotonic() - self._read_at >= self.refresh_seconds:
            try:
                self.refresh()
            except StoreError:
                with self._lock:  # the last meters read, until the store answers again
                    self._read_at = time.monotonic()
        return self._by_type.get(event_type, [])


def quantities(meters: list[Meter], raw: str) -> list[tuple[Meter, Decimal]]:
    """What one event (its data as sent) adds to each meter; meters it adds nothing to
    (a SUM whose value is absent or no number) are left out."""
    data: object = None
    if raw and any(m.value_property is not None for m in meters):
        try:
            data = _DECODER.decode(raw)
        except msgspec.DecodeError:
            data = None
    found: list[tuple[Meter, Decimal]] = []
    for meter in meters:
        value = _follow(data, meter.value_property) if meter.value_property else None
        quantity = event_quantity(meter.aggregation, value)
        if quantity is not None:
            found.append((meter, quantity))
    return found


def _follow(data: object, path: JsonPath) -> object:
    for step in path.steps:
        if isinstance(step, str) and isinstance(data, dict):
            data = data.get(step)
        elif isinstance(step, int) and isinstance(data, list) and -len(data) <= step < len(data):
            data = data[step]
        else:
            return None
    return data
