"""Decimal rules of the ledger: exact sums, readable amounts, amounts typed by people.

Balances add up millions of Decimal(38, 12) amounts. Python's default context keeps 28
significant digits, fewer than one such column holds, so every ledger sum runs in
:data:`LEDGER_CONTEXT`: 76 digits never round a sum of 38-digit values.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, Final

from meterhouse.jsonable import to_jsonable

LEDGER_CONTEXT: Final = Context(prec=76, rounding=ROUND_HALF_EVEN)
ZERO: Final = Decimal(0)
SCALE: Final = Decimal("1e-12")  # the scale of every Decimal(38, 12) column
DISPLAY_PLACES: Final = 4


class AmountError(ValueError):
    """A typed amount is not a number of credits."""


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Sum without rounding, whatever the caller's decimal context."""
    total = ZERO
    for value in values:
        total = LEDGER_CONTEXT.add(total, value)
    return total


def add(a: Decimal, b: Decimal) -> Decimal:
    return LEDGER_CONTEXT.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return LEDGER_CONTEXT.subtract(a, b)


def parse_credits(text: str, *, what: str = "amount") -> Decimal:
    """A positive number of credits with at most 12 decimal places, as a person typed it."""
    try:
        value = Decimal(text.strip().replace("_", ""))
    except InvalidOperation as exc:
        raise AmountError(f"{what} {text!r} is not a number of credits (e.g. 500 or 12.5)") from exc
    if not value.is_finite() or value <= 0:
        raise AmountError(f"{what} must be a positive number of credits; got {text!r}")
    if value != value.quantize(SCALE, context=LEDGER_CONTEXT):
        raise AmountError(f"{what} {text!r} has more than 12 decimal places")
    return value


def plain(value: Decimal) -> str:
    """Every digit, no exponent, no trailing zeros: what csv and json carry."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1), context=LEDGER_CONTEXT), "f")
    return format(value.normalize(LEDGER_CONTEXT), "f")


def shown(value: Decimal, places: int = DISPLAY_PLACES) -> str:
    """Rounded for people (half-even), with thousands separators: 12,345.6789."""
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding=ROUND_HALF_EVEN, context=LEDGER_CONTEXT):,}"


def jsonable(value: Any) -> Any:
    """Like meterhouse.jsonable.to_jsonable, with amounts as :func:`plain` strings."""
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return to_jsonable(value)
