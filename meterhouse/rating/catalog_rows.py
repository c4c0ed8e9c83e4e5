"""The catalog as rows of the ``model_prices`` table, with its price history.

Why a history: usage is rated at the price in force when the call was made, and a
statement must be explainable later, so the table keeps every period the catalog knows.
genai-prices states history as a list of conditional prices where the last one whose
condition holds wins; this module turns that rule into periods [effective_from,
effective_to). Time-of-day prices (e.g. DeepSeek's peak hours) are not periods: they go into
the row's JSON, beside tiered prices, which the fixed price columns cannot hold either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final

from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from meterhouse.rating.money import quantize

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS: Final = (
    "provider",
    "model_id",
    "model_name",
    "effective_from",
    "effective_to",
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "tiers",
    "context_window",
    "catalog_version",
    "synced_at",
)
PRICE_COLUMNS: Final = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


@dataclass(frozen=True)
class Period:
    """Prices from ``start`` (None: since always) until the next period's start."""

    start: date | None
    prices: ModelPrice
    time_of_day: tuple[ConditionalPrice, ...]


def model_price_rows(
    providers: Sequence[Provider], version: str, synced_at: datetime
) -> dict[str, list[Any]]:
    """Column-wise rows for every model of every provider, one per price period."""
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for provider in providers:
        for info in provider.models:
            periods = price_periods(info)
            for index, period in enumerate(periods):
                following = periods[index + 1].start if index + 1 < len(periods) else None
                row = {
                    "provider": provider.id,
                    "model_id": info.id,
                    "model_name": info.name or "",
                    "effective_from": _midnight(period.start) if period.start else EPOCH,
                    "effective_to": _midnight(following) if following else None,
                    **{key: _base_price(period.prices, key) for key in PRICE_COLUMNS},
                    "tiers": _extras_json(period),
                    "context_window": info.context_window,
                    "catalog_version": version,
                    "synced_at": synced_at,
                }
                for name in COLUMNS:
                    columns[name].append(row[name])
    return columns


def price_periods(info: ModelInfo) -> list[Period]:
    """The model's start-date periods, oldest first, equal neighbours merged."""
    if isinstance(info.prices, ModelPrice):
        return [Period(None, info.prices, ())]
    conditional = info.prices
    starts = sorted(
        {
            c.constraint.start_date
            for c in conditional
            if isinstance(c.constraint, StartDateConstraint)
        }
    )
    periods: list[Period] = []
    for start in [None, *starts]:
        index = _standard_index(conditional, start)
        time_of_day = tuple(
            c for c in conditional[index + 1 :] if isinstance(c.constraint, TimeOfDateConstraint)
        )
        period = Period(start, conditional[index].prices, time_of_day)
        if periods and (periods[-1].prices, periods[-1].time_of_day) == (
            period.prices,
            period.time_of_day,
        ):
            continue
        periods.append(period)
    return periods


def _standard_index(conditional: Sequence[ConditionalPrice], day: date | None) -> int:
    """genai-prices' rule (ModelInfo.get_prices) on a day, leaving time-of-day prices out:
    the last price whose condition holds, else the first."""
    for index in range(len(conditional) - 1, -1, -1):
        constraint = conditional[index].constraint
        if constraint is None:
            return index
        if isinstance(constraint, StartDateConstraint) and day and day >= constraint.start_date:
            return index
    return 0


def _midnight(day: date) -> datetime:
    # StartDateConstraint compares the request's UTC date, so a period starts at UTC midnight.
    return datetime.combine(day, time(), tzinfo=UTC)


def _base_price(prices: ModelPrice, key: str) -> Decimal | None:
    value: Decimal | TieredPrices | None = getattr(prices, key, None)
    if isinstance(value, TieredPrices):
        value = value.base
    return None if value is None else quantize(value)


def _extras_json(period: Period) -> str:
    extras: dict[str, Any] = {}
    tiered = _tiered(period.prices)
    if tiered:
        extras["tiered"] = tiered
    if period.time_of_day:
        extras["time_of_day"] = [
            {
                "start_time": c.constraint.start_time.isoformat(),
                "end_time": c.constraint.end_time.isoformat(),
                "prices": _price_json(c.prices),
            }
            for c in period.time_of_day
            if isinstance(c.constraint, TimeOfDateConstraint)
        ]
    return json.dumps(extras, sort_keys=True) if extras else ""


def _tiered(prices: ModelPrice) -> dict[str, Any]:
    return {
        key: _value_json(value)
        for key, value in sorted(vars(prices).items())
        if isinstance(value, TieredPrices)
    }


def _price_json(prices: ModelPrice) -> dict[str, Any]:
    return {
        key: _value_json(value) for key, value in sorted(vars(prices).items()) if value is not None
    }


def _value_json(value: Decimal | TieredPrices) -> Any:
    """Prices as strings (exact), tier starts as the input-token counts they apply above."""
    if isinstance(value, TieredPrices):
        return {
            "base": str(value.base),
            "tiers": [{"above_input_tokens": t.start, "price": str(t.price)} for t in value.tiers],
        }
    return str(value)
