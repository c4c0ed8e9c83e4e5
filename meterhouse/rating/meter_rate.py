"""The price of one event's usage of a meter: quantity x the meter's unit price.

Only additive meters are billed event by event (SUM: the event's value, COUNT: 1), so a
month's charge is the sum of its events' charges, like every other usage line. Credits
per unit are the price book's USD list price times the plan's credits_per_usd, less the
account's discount, unless the plan sets its own credits per unit (then the discount
applies to that). Everything is Decimal, rounded half-even once per amount to 12 places.
A meter without a price is stored unpriced (flagged on statements), never as free.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Final

from meterhouse.rating.money import CONTEXT, quantize
from meterhouse.rating.price_book import PriceBook
from meterhouse.rating.rate import UNKNOWN_PLAN
from meterhouse.rating.rater import UnitRating, to_units

NO_METER_PRICE: Final = "no_meter_price"
BILLED_AGGREGATIONS: Final = frozenset({"SUM", "COUNT"})


def rate_meter(
    book: PriceBook,
    *,
    account_id: str,
    plan: str,
    slug: str,
    unit: str,
    quantity: Decimal,
    version: str,
) -> UnitRating:
    """One usage line of ``quantity`` units of meter ``slug``."""
    units = unit or "unit"
    amount = to_units(quantize(quantity))
    price = book.meter_price(slug)
    credits_per_usd = book.credits_per_usd(plan)
    reason = ""
    if price is None:
        reason = NO_METER_PRICE
    elif plan not in price.plan_credits_per_unit and credits_per_usd is None:
        reason = UNKNOWN_PLAN
    if price is None or reason:
        line = (units, amount, units, 0, 0, 0, 0)
        return UnitRating("meter", slug, "", (line,), 0, 0, False, reason, version)
    with localcontext(CONTEXT):
        discount = book.terms(account_id).discount_factor
        listed = price.plan_credits_per_unit.get(plan)
        if listed is None:
            assert credits_per_usd is not None
            listed = price.usd_per_unit * credits_per_usd
        credits_per_unit = listed * discount
        credits = quantize(quantity * credits_per_unit)
        usd = quantize(quantity * price.usd_per_unit)
    line = (
        units,
        amount,
        units,
        to_units(quantize(credits_per_unit)),
        to_units(quantize(price.usd_per_unit)),
        to_units(credits),
        to_units(usd),
    )
    return UnitRating(
        "meter", slug, "", (line,), to_units(credits), to_units(usd), True, "", version
    )


def event_quantity(aggregation: str, value: object) -> Decimal | None:
    """What one event adds to an additive meter: 1 for COUNT, its value for SUM (a number,
    or a string holding one, as the meter query reads it); None when it adds nothing."""
    if aggregation == "COUNT":
        return Decimal(1)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None
