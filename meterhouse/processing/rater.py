"""The rater the service and the demo use."""

from __future__ import annotations

from decimal import Decimal

from meterhouse import records as r
from meterhouse.processing.pipeline import Rater
from meterhouse.store.base import Store

ZERO = Decimal(0)


def unpriced_rater(event: r.Event, plan: str, account_id: str) -> r.Rating | None:
    """Stores usage with zero prices, flagged unpriced, until a price applies."""
    data = event.data
    if isinstance(data, r.ModelCallData):
        lines = tuple(
            r.PricedLine(
                usage_type=t,
                quantity=Decimal(q),
                unit="token",
                unit_price_credits=ZERO,
                unit_price_usd=ZERO,
                credits=ZERO,
                usd=ZERO,
            )
            for t, q in (("input", data.input_tokens), ("output", data.output_tokens))
        )
        return r.Rating(
            kind="model",
            item=data.model,
            provider=data.provider,
            lines=lines,
            credits=ZERO,
            usd=ZERO,
            priced=False,
            unpriced_reason="no_price_book",
            price_version="",
        )
    return None


def default_rater(store: Store) -> Rater:
    return unpriced_rater
