"""Decimal rules shared by the rating modules.

Every amount ClickHouse stores is ``Decimal(38, 12)``, so rating rounds once, to 12 places,
with banker's rounding (ROUND_HALF_EVEN: no upward drift over millions of lines). All
arithmetic runs in :data:`CONTEXT`, not the caller's thread-local context, so a rating does
not depend on who computes it: 76 digits hold any product of two 38-digit columns exactly.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Final

SCALE: Final = Decimal("1e-12")
CONTEXT: Final = Context(prec=76, rounding=ROUND_HALF_EVEN)
ZERO: Final = Decimal(0).quantize(SCALE)


def quantize(value: Decimal) -> Decimal:
    """``value`` rounded half-even to the 12 decimal places of a Decimal(38, 12) column."""
    return value.quantize(SCALE, rounding=ROUND_HALF_EVEN, context=CONTEXT)
