"""The rating step of every writer of events: ``rate``'s results at ingest speed.

The price rules are written once, in meterhouse/rating/rate.py: ``rate`` prices one event
from the catalog and the price book (the job and API rules are functions there that this
module calls too). ``rate`` resolves the model, walks genai-prices' price objects and
cross-checks every quote against ``calc_price``: about 0.1 ms per event, most of it spent
recomputing the same prices. :class:`Rater` does that work once per (model, provider,
price period, tier, plan, account), checks the result against ``rate`` on probes that
span the tier region (``_verified``), and keeps the unit prices as exact fixed-point
integers; an event's lines are then a few integer multiplications, rounded half-even to
the 1e-12 of a ``Decimal(38, 12)`` column exactly as ``rate`` rounds. A model the catalog
does not know is remembered as unknown, so its calls cost no ``rate`` each.

Amounts come out as integers in units of 1e-12 (:class:`UnitRating`): the column builder
stores them without making a Decimal per value. :meth:`Rater.rating` turns them into the
very ``Rating`` that ``rate`` returns (tests/rating/test_rater.py checks equality on
random events over the whole catalog).

``batch_lines`` prices many model calls at once with numpy (the column builder's path for
calls whose prices are cached): the same integers, tested against ``_compute`` call by call.

What is not cached is handed to ``rate`` itself: unknown plans, negative counts, usage a
model has no price for, price periods bounded by constraints this module does not
evaluate, finished runs without a duration, and any (model, period, tier) whose probes
disagree with ``rate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from genai_prices.types import (
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from meterhouse import records as r
from meterhouse.rating.catalog import (
    PER,
    PRICE_KEYS,
    TOKENS_PER_MTOK,
    Catalog,
    CatalogModel,
    split_tokens,
)
from meterhouse.rating.money import CONTEXT
from meterhouse.rating.price_book import PriceBook
from meterhouse.rating.rate import (
    UNKNOWN_MODEL,
    api_credits_per_call,
    job_credits_per_second,
    rate,
)

SCALE_DIGITS: Final = 12
ONE: Final = 10**SCALE_DIGITS  # 1.0 in units of 1e-12
MAX_CACHED: Final = 10_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY: Final = 86_400_000_000
_ONE_US: Final = timedelta(microseconds=1)
_MODEL_TYPES: Final = ("input", "cache_read", "cache_write", "output", "reasoning", "call")

Line = tuple[str, int, str, int, int, int, int]
"""(usage_type, quantity, unit, unit_price_credits, unit_price_usd, credits, usd); every
number an integer in units of 1e-12."""


@dataclass(slots=True)
class UnitRating:
    """A Rating whose amounts are integers in units of 1e-12 (see :data:`Line`).

    Not frozen (nothing changes one after it is made): one is made per usage event, and a
    frozen dataclass pays an ``object.__setattr__`` per field to be built."""

    kind: str
    item: str
    provider: str
    lines: tuple[Line, ...]
    credits: int
    usd: int
    priced: bool
    unpriced_reason: str
    price_version: str

    def to_rating(self) -> r.Rating:
        """The same value as ``rate`` returns, Decimal for Decimal."""
        lines = tuple(
            r.PricedLine(
                usage_type=usage_type,
                quantity=to_decimal(quantity),
                unit=unit,
                unit_price_credits=to_decimal(upc),
                unit_price_usd=to_decimal(upu),
                credits=to_decimal(credits),
                usd=to_decimal(usd),
            )
            for usage_type, quantity, unit, upc, upu, credits, usd in self.lines
        )
        return r.Rating(
            kind=self.kind,  # type: ignore[arg-type]
            item=self.item,
            provider=self.provider,
            lines=lines,
            credits=to_decimal(self.credits),
            usd=to_decimal(self.usd),
            priced=self.priced,
            unpriced_reason=self.unpriced_reason,
            price_version=self.price_version,
        )


def to_decimal(units: int) -> Decimal:
    """Units of 1e-12 as the Decimal with 12 places that ``money.quantize`` gives."""
    return Decimal(units).scaleb(-SCALE_DIGITS, context=CONTEXT)


def to_units(value: Decimal) -> int:
    """A Decimal with at most 12 places (a rated amount) as units of 1e-12, exactly."""
    return int(value.scaleb(SCALE_DIGITS, context=CONTEXT))


def from_rating(rating: r.Rating) -> UnitRating:
    return UnitRating(
        kind=rating.kind,
        item=rating.item,
        provider=rating.provider,
        lines=tuple(
            (
                line.usage_type,
                to_units(line.quantity),
                line.unit,
                to_units(line.unit_price_credits),
                to_units(line.unit_price_usd),
                to_units(line.credits),
                to_units(line.usd),
            )
            for line in rating.lines
        ),
        credits=to_units(rating.credits),
        usd=to_units(rating.usd),
        priced=rating.priced,
        unpriced_reason=rating.unpriced_reason,
        price_version=rating.price_version,
    )


# -- exact fixed-point ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scaled:
    """Multiplication by an exact decimal, then half-even rounding to 1e-12:
    ``x -> round(x * mult / div)``; ``div`` is a power of ten (1 when exact)."""

    mult: int
    div: int

    def __call__(self, x: int) -> int:
        if self.div == 1:
            return x * self.mult
        return _div_half_even(x * self.mult, self.div)


def _div_half_even(n: int, d: int) -> int:
    """n / d rounded half to even; n >= 0 (amounts and quantities are never negative)."""
    q, rem = divmod(n, d)
    twice = 2 * rem
    if twice > d or (twice == d and q & 1):
        q += 1
    return q


def fixed(value: Decimal) -> tuple[int, int]:
    """An exact decimal as (n, e) with value = n * 10**-e, trailing zeros removed."""
    sign, digits, exponent = value.normalize(context=CONTEXT).as_tuple()
    assert isinstance(exponent, int), "only finite prices reach here"
    n = int("".join(map(str, digits)) or "0")
    if sign:
        n = -n
    if exponent >= 0:
        return n * 10**exponent, 0
    return n, -exponent


def scaled(value: Decimal, extra_digits: int = 0) -> Scaled:
    """Units of 1e-12 of ``x * value / 10**extra_digits``, for an integer x (in units of
    10**-SCALE_DIGITS when x itself is an amount, see :func:`amount_times`)."""
    n, e = fixed(value)
    e += extra_digits
    if e <= SCALE_DIGITS:
        return Scaled(n * 10 ** (SCALE_DIGITS - e), 1)
    return Scaled(n, 10 ** (e - SCALE_DIGITS))


def amount_times(value: Decimal) -> Scaled:
    """For x already in units of 1e-12: units of 1e-12 of (x * 1e-12) * value."""
    n, e = fixed(value)
    if e == 0:
        return Scaled(n, 1)
    return Scaled(n, 10**e)


def _units_of_price(value: Decimal) -> int:
    """A unit price rounded to 1e-12 (the stored unit_price_* columns)."""
    return scaled(value)(1)


# -- price periods ----------------------------------------------------------------------

Condition = Callable[[int], bool]  # epoch microseconds -> active


def _condition(constraint: object) -> Condition | None:
    """genai-prices' constraint as a test on epoch microseconds; None if not supported."""
    if constraint is None:
        return lambda _us: True
    if isinstance(constraint, StartDateConstraint):
        start_day = (constraint.start_date - _EPOCH.date()).days
        return lambda us: us // _US_PER_DAY >= start_day
    if isinstance(constraint, TimeOfDateConstraint):
        start = _utc_microsecond_of_day(constraint.start_time)
        end = _utc_microsecond_of_day(constraint.end_time)
        if end < start:
            return lambda us: us % _US_PER_DAY >= start or us % _US_PER_DAY < end
        return lambda us: start <= us % _US_PER_DAY < end
    return None


def _utc_microsecond_of_day(value: time) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    moment = datetime.combine(datetime(1970, 1, 1).date(), aware).astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return (moment - midnight) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _PriceKey:
    """How one usage type is priced in one price period: a fixed price or tiers."""

    per_digits: int  # 6 for per-million-token prices, 3 for per-thousand-request prices
    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]  # (start, price), ascending; empty when fixed

    def price(self, total_input: int) -> Decimal:
        applicable = self.base
        for start, price in reversed(self.tiers):
            if total_input > start:
                applicable = price
                break
        return applicable

    def region(self, total_input: int) -> int:
        return sum(1 for start, _ in self.tiers if total_input > start)


@dataclass(frozen=True, slots=True)
class _Period:
    keys: dict[str, _PriceKey | None]  # usage type -> price (None: the catalog has none)
    per_request: bool  # the model charges a fee per request ("call" line)
    thresholds: tuple[int, ...]  # every tier start of the period, ascending

    def region(self, total_input: int) -> int:
        return sum(1 for start in self.thresholds if total_input > start)


def _period(prices: ModelPrice) -> _Period:
    keys: dict[str, _PriceKey | None] = {}
    thresholds: set[int] = set()
    for usage_type, candidates in PRICE_KEYS.items():
        keys[usage_type] = None
        for price_key in candidates:
            price = getattr(prices, price_key, None)
            if price is None:
                continue
            per = PER.get(price_key, TOKENS_PER_MTOK)
            per_digits = len(str(per)) - 1
            if isinstance(price, TieredPrices):
                tiers = tuple((tier.start, tier.price) for tier in price.tiers)
                thresholds.update(start for start, _ in tiers)
                keys[usage_type] = _PriceKey(per_digits, price.base, tiers)
            else:
                keys[usage_type] = _PriceKey(per_digits, price, ())
            break
    per_request = getattr(prices, "requests_kcount", None) is not None
    return _Period(keys, per_request, tuple(sorted(thresholds)))


@dataclass(frozen=True, slots=True)
class _ModelPrices:
    """A model's price periods, and how to pick one for a request time."""

    model: CatalogModel
    periods: tuple[_Period, ...]
    conditions: tuple[Condition, ...]  # same order as genai-prices' list; empty: one period

    def period_index(self, us: int) -> int:
        """genai-prices' rule: the last active conditional price, else the first."""
        for index in range(len(self.conditions) - 1, -1, -1):
            if self.conditions[index](us):
                return index
        return 0


def _model_prices(model: CatalogModel) -> _ModelPrices | None:
    prices = model.info.prices
    if isinstance(prices, ModelPrice):
        return _ModelPrices(model, (_period(prices),), ())
    conditions: list[Condition] = []
    for conditional in prices:
        condition = _condition(conditional.constraint)
        if condition is None:
            return None
        conditions.append(condition)
    if not conditions:
        return None
    return _ModelPrices(model, tuple(_period(c.prices) for c in prices), tuple(conditions))


# -- the rater --------------------------------------------------------------------------


class _LinePrice(NamedTuple):
    """Everything one model line needs for one (period, tier region, plan, account).

    ``usd = round(quantity * usd_mult / usd_div)``; ``credits = round(base * credits_mult
    / credits_div)`` where base is the usd amount, or the quantity under an override.
    """

    usage_type: str
    unit: str
    optional: bool  # left out when its quantity is 0 (all but input and output)
    priced: bool  # the catalog has a price for it
    usd_mult: int
    usd_div: int
    credits_mult: int
    credits_div: int
    override: bool
    unit_price_credits: int
    unit_price_usd: int


_Lines = tuple[_LinePrice, ...]  # in _MODEL_TYPES order


class Rater:
    """``rate`` with memoized prices: the rating step of every writer of events.

    Thread-safe: caches only grow or are swapped whole."""

    def __init__(self, catalog: Catalog, book: PriceBook) -> None:
        self.catalog = catalog
        self.book = book
        self.version = f"{catalog.version}+{book.version}"
        self._models: dict[tuple[str, str], _ModelPrices | None] = {}
        self._unknown: set[tuple[str, str]] = set()
        self._simple: dict[tuple[str, str, str, str], tuple[_ModelPrices, _Lines, ModelLines]] = {}
        self._lines: dict[tuple[int, int, int, str, str], _Lines | None] = {}
        self._jobs: dict[tuple[str, str], tuple[Scaled, int] | None] = {}
        self._api: dict[tuple[str, str], tuple[int, int]] = {}

    @classmethod
    def default(cls) -> Rater:
        """The service's rater: the bundled LLM catalog and the shipped price book."""
        return cls(Catalog.load(), PriceBook.load())

    def rating(self, event: r.Event, plan: str) -> r.Rating | None:
        """The Rating of ``event`` for ``plan``, equal to ``rate``'s (None: not usage)."""
        rated = self.units(event, plan, epoch_microseconds(event.time))
        return rated.to_rating() if rated is not None else None

    def known_lines(self, data: r.ModelCallData, plan: str, account_id: str) -> ModelLines | None:
        """The priced lines of a model call whose (model, provider, plan, account) has one
        price period and no tiers and was rated before: the batch path (``batch_lines``)
        prices many such calls at once. None: rate the call with ``units``."""
        entry = self._simple.get((data.model, data.provider, plan, account_id))
        return entry[2] if entry is not None else None

    def units(self, event: r.Event, plan: str, us: int) -> UnitRating | None:
        """The rating of ``event`` (for ``plan``, at ``us`` = its time in epoch
        microseconds) with integer amounts; None for events that are not usage."""
        data = event.data
        if isinstance(data, r.ModelCallData):
            fast = self._model_call(event, data, plan, us)
            if fast is not None:
                return fast
        elif isinstance(data, r.JobRunData):
            if data.status not in r.FINAL_RUN_STATUSES:
                return None
            fast = self._job_run(event, data)
            if fast is not None:
                return fast
        elif isinstance(data, r.ApiCallData):
            return self._api_call(event, data)
        else:
            return None
        return self.slow(event, plan)

    def slow(self, event: r.Event, plan: str) -> UnitRating | None:
        rating = rate(event, plan=plan, catalog=self.catalog, book=self.book)
        return from_rating(rating) if rating is not None else None

    # -- model calls -----------------------------------------------------------------

    def _model_call(
        self, event: r.Event, data: r.ModelCallData, plan: str, us: int
    ) -> UnitRating | None:
        simple = self._simple.get((data.model, data.provider, plan, event.account_id))
        if simple is not None and not _negative(data):
            return self._compute(simple[0], simple[1], data)
        name = (data.model, data.provider)
        prices = self._models.get(name)
        if prices is None and name not in self._models:
            prices = self._remember_model(name)
        if prices is None:
            # Remembered as unknown: its quantities without a price, no rate() per call.
            return self._unknown_model(data) if name in self._unknown else None
        if _negative(data):
            return None
        period_index = prices.period_index(us) if prices.conditions else 0
        period = prices.periods[period_index]
        region = period.region(_total_input(data)) if period.thresholds else 0
        key = (id(prices), period_index, region, plan, event.account_id)
        lines = self._lines.get(key)
        if lines is None and key not in self._lines:
            lines = self._remember_lines(key, event, prices, period, region, plan, us)
        if lines is None:
            return None
        if not prices.conditions and not period.thresholds:
            # One price period, no tiers: the lines depend on nothing else.
            if len(self._simple) >= MAX_CACHED:
                self._simple = {}
            known = ModelLines(prices.model.model_id, prices.model.provider, lines)
            self._simple[data.model, data.provider, plan, event.account_id] = (
                prices,
                lines,
                known,
            )
        return self._compute(prices, lines, data)

    def _compute(
        self, prices: _ModelPrices, lines: _Lines, data: r.ModelCallData
    ) -> UnitRating | None:
        """The lines of one model call, as rate's _model_call makes them."""
        cache_read, cache_write = data.cache_read_tokens, data.cache_write_tokens
        reasoning = data.reasoning_tokens
        uncached = data.input_tokens - cache_read - cache_write
        output = data.output_tokens - reasoning
        quantities = (
            uncached if uncached > 0 else 0,
            cache_read,
            cache_write,
            output if output > 0 else 0,
            reasoning,
            1,
        )
        out: list[Line] = []
        credits_total = usd_total = 0
        for price, quantity in zip(lines, quantities, strict=True):
            (usage_type, unit, optional, priced, usd_mult, usd_div) = price[:6]
            if quantity == 0 and optional:
                continue
            override = price.override
            if priced:
                usd = quantity * usd_mult
                if usd_div != 1:
                    usd = _div_half_even(usd, usd_div)
            elif usage_type == "call":
                continue  # no per-request fee
            elif override or not quantity:
                usd = 0
            else:
                return None  # no price and no override: rate() says why
            credits = (quantity if override else usd) * price.credits_mult
            if price.credits_div != 1:
                credits = _div_half_even(credits, price.credits_div)
            out.append(
                (
                    usage_type,
                    quantity * ONE,
                    unit,
                    price.unit_price_credits,
                    price.unit_price_usd,
                    credits,
                    usd,
                )
            )
            credits_total += credits
            usd_total += usd
        return UnitRating(
            "model",
            prices.model.model_id,
            prices.model.provider,
            tuple(out),
            credits_total,
            usd_total,
            True,
            "",
            self.version,
        )

    def _remember_model(self, name: tuple[str, str]) -> _ModelPrices | None:
        model = self.catalog.resolve(*name)
        prices = _model_prices(model) if model is not None else None
        if len(self._models) >= MAX_CACHED:
            self._models = {}
            self._lines = {}
            self._unknown = set()
        self._models[name] = prices
        if model is None:
            self._unknown.add(name)
        return prices

    def _unknown_model(self, data: r.ModelCallData) -> UnitRating | None:
        """rate's answer for a model the catalog does not know: quantities, no price."""
        if _negative(data):
            return None  # invalid_usage: rate() says so
        tokens = split_tokens(
            input_tokens=data.input_tokens,
            output_tokens=data.output_tokens,
            cache_read=data.cache_read_tokens,
            cache_write=data.cache_write_tokens,
            reasoning=data.reasoning_tokens,
        )
        lines = tuple(
            (usage_type, quantity * ONE, r.USAGE_UNITS[usage_type], 0, 0, 0, 0)
            for usage_type, quantity in tokens.items()
        )
        return UnitRating(
            "model",
            data.model,
            data.provider,
            lines,
            0,
            0,
            False,
            UNKNOWN_MODEL,
            self.version,
        )

    def _remember_lines(
        self,
        key: tuple[int, int, int, str, str],
        event: r.Event,
        prices: _ModelPrices,
        period: _Period,
        region: int,
        plan: str,
        us: int,
    ) -> _Lines | None:
        totals = _region_points(period.thresholds, region)
        lines = self._price_lines(event.account_id, prices.model.model_id, period, totals[0], plan)
        if lines is not None and not self._verified(event, prices, plan, lines, us, totals):
            lines = None
        if len(self._lines) >= MAX_CACHED:
            self._lines = {}
        self._lines[key] = lines
        return lines

    def _price_lines(
        self, account_id: str, item: str, period: _Period, total_input: int, plan: str
    ) -> _Lines | None:
        credits_per_usd = self.book.credits_per_usd(plan)
        if credits_per_usd is None:
            return None
        terms = self.book.terms(account_id)
        with localcontext(CONTEXT):
            per_usd = credits_per_usd * terms.discount_factor
            return tuple(
                _line_price(
                    usage_type,
                    period.keys[usage_type],
                    total_input,
                    per_usd,
                    terms.override("model", item, usage_type),
                )
                for usage_type in _MODEL_TYPES
            )

    def _verified(
        self,
        event: r.Event,
        prices: _ModelPrices,
        plan: str,
        lines: _Lines,
        us: int,
        totals: tuple[int, ...],
    ) -> bool:
        """Compare with ``rate`` on probes that span this tier region's usage space.

        Within one tier region both sides are linear in the five token quantities, plus a
        constant (the per-request fee): probes at two total inputs, and with cache reads,
        cache writes, output and reasoning, are six independent vectors, so agreement on
        them is agreement on every event of the region. Where a region holds one total
        input only (0), the cache parts are 0 in every event of it and are not probed.
        """
        first = totals[0]
        half = first // 2
        probes: list[tuple[int, int, int, int, int]] = [
            (total, 0, 0, 0, 0) for total in totals
        ]  # (input, output, cache_read, cache_write, reasoning)
        if half > 0:
            probes += [(first, 0, half, 0, 0), (first, 0, 0, half, 0)]
        probes += [(first, 1009, 0, 0, 0), (first, 1013, 0, 0, 503)]
        probe_time = _EPOCH + timedelta(microseconds=us)
        for input_tokens, output_tokens, cache_read, cache_write, reasoning in probes:
            data = r.ModelCallData(
                model=prices.model.model_id,
                provider=prices.model.provider,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                reasoning_tokens=reasoning,
                account_id=event.account_id,
            )
            probe = r.Event(
                id="probe",
                source="probe",
                type=r.MODEL_CALL,
                time=probe_time,
                data=data,
                account_id=event.account_id,
            )
            expected = rate(probe, plan=plan, catalog=self.catalog, book=self.book)
            got = self._compute(prices, lines, data)
            if expected is None or got is None or got.to_rating() != expected:
                return False
        return True

    # -- job runs and API calls --------------------------------------------------------

    def _job_run(self, event: r.Event, data: r.JobRunData) -> UnitRating | None:
        seconds = data.duration_seconds
        if seconds is None or not seconds.is_finite() or seconds < 0:
            return None
        key = (event.account_id, data.kind)
        price = self._jobs.get(key)
        if price is None and key not in self._jobs:
            price = self._remember_job(key)
        if price is None:
            return None
        per_second, unit_price = price
        quantity = _seconds_units(seconds)
        credits = per_second(quantity)
        line: Line = ("compute_seconds", quantity, "second", unit_price, 0, credits, 0)
        return UnitRating("job", data.kind, "", (line,), credits, 0, True, "", self.version)

    def _remember_job(self, key: tuple[str, str]) -> tuple[Scaled, int] | None:
        account_id, kind = key
        with localcontext(CONTEXT):
            per_second = job_credits_per_second(self.book.terms(account_id), self.book, kind)
        value = (
            (amount_times(per_second), _units_of_price(per_second))
            if per_second is not None
            else None
        )
        if len(self._jobs) >= MAX_CACHED:
            self._jobs = {}
        self._jobs[key] = value
        return value

    def _api_call(self, event: r.Event, data: r.ApiCallData) -> UnitRating:
        key = (event.account_id, data.route)
        price = self._api.get(key)
        if price is None:
            terms = self.book.terms(event.account_id)
            with localcontext(CONTEXT):
                per_call = api_credits_per_call(terms, self.book, data.route)
            price = (scaled(per_call)(1), _units_of_price(per_call))
            if len(self._api) >= MAX_CACHED:
                self._api = {}
            self._api[key] = price
        credits, unit_price = price
        line: Line = ("call", ONE, "call", unit_price, 0, credits, 0)
        return UnitRating("api", data.route, "", (line,), credits, 0, True, "", self.version)


def _line_price(
    usage_type: str,
    price_key: _PriceKey | None,
    total_input: int,
    per_usd: Decimal,
    override: Decimal | None,
) -> _LinePrice:
    if price_key is None:
        usd = Scaled(0, 1)
        usd_per_unit = Decimal(0)
    else:
        price = price_key.price(total_input)
        usd = scaled(price, price_key.per_digits)
        usd_per_unit = price.scaleb(-price_key.per_digits, context=CONTEXT)
    if override is not None:
        credits, credits_per_unit = scaled(override), override
    else:
        credits = amount_times(per_usd)
        with localcontext(CONTEXT):
            credits_per_unit = usd_per_unit * per_usd
    return _LinePrice(
        usage_type=usage_type,
        unit=r.USAGE_UNITS[usage_type],
        optional=usage_type not in ("input", "output"),
        priced=price_key is not None,
        usd_mult=usd.mult,
        usd_div=usd.div,
        credits_mult=credits.mult,
        credits_div=credits.div,
        override=override is not None,
        unit_price_credits=_units_of_price(credits_per_unit),
        unit_price_usd=_units_of_price(usd_per_unit),
    )


def _seconds_units(seconds: Decimal) -> int:
    """quantize(seconds) in units of 1e-12 (half-even, as rate's quantize); seconds >= 0.
    From the exact fraction: no Decimal context, no digits tuple."""
    numerator, denominator = seconds.as_integer_ratio()
    return _div_half_even(numerator * ONE, denominator)


def epoch_microseconds(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float on the way); naive times are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros: int = (moment - _EPOCH) // _ONE_US
    return micros


def _negative(data: r.ModelCallData) -> bool:
    """A negative count: rate() says invalid_usage."""
    return (
        min(
            data.input_tokens,
            data.output_tokens,
            data.cache_read_tokens,
            data.cache_write_tokens,
            data.reasoning_tokens,
        )
        < 0
    )


def _total_input(data: r.ModelCallData) -> int:
    """The total input that picks a tier, as rate's quote computes it from split_tokens."""
    uncached = data.input_tokens - data.cache_read_tokens - data.cache_write_tokens
    return max(uncached, 0) + data.cache_read_tokens + data.cache_write_tokens


def _region_points(thresholds: tuple[int, ...], region: int) -> tuple[int, ...]:
    """One or two total inputs inside tier region ``region`` (two when it has two)."""
    low = thresholds[region - 1] + 1 if region > 0 else 0
    high = thresholds[region] if region < len(thresholds) else low + 2_000_000
    first = min(max(low, 1000), high)
    second = first + 1 if first + 1 <= high else first - 1
    if second < low or second == first:
        return (first,)
    return (first, second)


# -- many model calls at once --------------------------------------------------------------

_INT64_SAFE: Final = 2**59  # six such amounts still add up within int64
_MAX_TOKENS: Final = 10**8  # beyond, quantities * 10**12 may not fit the 128-bit split below


class ModelLines:
    """The cached prices of one (model, provider, plan, account): see ``known_lines``.

    The six line prices are also kept as int64 rows, so a batch of calls with different
    entries is priced by gathering rows (``batch_lines``) instead of one loop per entry.
    """

    def __init__(self, item: str, provider: str, lines: _Lines) -> None:
        self.item = item
        self.provider = provider
        self.lines = lines
        try:
            self.numbers: npt.NDArray[np.int64] | None = np.array(
                [
                    [p.usd_mult for p in lines],
                    [p.usd_div for p in lines],
                    [p.credits_mult for p in lines],
                    [p.credits_div for p in lines],
                    [p.unit_price_credits for p in lines],
                    [p.unit_price_usd for p in lines],
                    [p.priced for p in lines],
                    [p.override for p in lines],
                    [p.optional for p in lines],
                ],
                dtype=np.int64,
            )
        except OverflowError:  # prices beyond int64: this entry is never batched
            self.numbers = None


@dataclass(frozen=True)
class LineColumns:
    """The usage lines of n model calls, column-wise, in the order ``_compute`` makes them.

    ``offsets`` (n + 1) delimit each call's lines in the flat arrays; amounts are int64 in
    units of 1e-12 except ``tokens`` (quantity in tokens: times 10**12 it may pass int64).
    """

    offsets: npt.NDArray[np.int32]
    usage_types: npt.NDArray[np.object_]
    units: npt.NDArray[np.object_]
    tokens: npt.NDArray[np.int64]
    unit_price_credits: npt.NDArray[np.int64]
    unit_price_usd: npt.NDArray[np.int64]
    credits: npt.NDArray[np.int64]
    usd: npt.NDArray[np.int64]
    credits_total: npt.NDArray[np.int64]
    usd_total: npt.NDArray[np.int64]


def batch_lines(
    entries: list[ModelLines], entry_of: npt.NDArray[np.intp], tokens: npt.NDArray[np.int64]
) -> tuple[LineColumns, npt.NDArray[np.bool_]]:
    """The lines of n model calls at once, with numpy; call i is priced by
    ``entries[entry_of[i]]`` and ``tokens[i]`` (input, output, cache_read, cache_write,
    reasoning as reported).

    Returns the lines of the calls it could price, and a mask of those calls; the others
    (a count out of range, usage with no price and no override, amounts too large for
    int64) take ``FastRater.units``. Equal, value for value, to ``_compute`` per call.
    """
    count = tokens.shape[0]
    usable = np.array([e.numbers is not None for e in entries], dtype=np.bool_)
    table = np.stack(
        [e.numbers if e.numbers is not None else np.ones((9, 6), np.int64) for e in entries]
    )  # (entries, 9 fields, 6 line types)
    numbers = table[entry_of]  # (count, 9, 6)
    usd_mult, usd_div, credits_mult, credits_div = (numbers[:, k, :] for k in range(4))
    unit_price_credits, unit_price_usd = numbers[:, 4, :], numbers[:, 5, :]
    priced, override, optional = (numbers[:, k, :].astype(np.bool_) for k in (6, 7, 8))
    ok = usable[entry_of] & (tokens.min(axis=1) >= 0) & (tokens.max(axis=1) <= _MAX_TOKENS)
    safe = np.where(ok[:, None], tokens, 0)
    input_tokens, output, cache_read, cache_write, reasoning = safe.T
    quantities = np.empty((count, 6), dtype=np.int64)
    quantities[:, 0] = np.maximum(input_tokens - cache_read - cache_write, 0)
    quantities[:, 1] = cache_read
    quantities[:, 2] = cache_write
    quantities[:, 3] = np.maximum(output - reasoning, 0)
    quantities[:, 4] = reasoning
    quantities[:, 5] = 1
    is_call = np.zeros((count, 6), dtype=np.bool_)
    is_call[:, 5] = True
    present = np.where(is_call, priced, ~optional | (quantities > 0))
    # No price, no override, some quantity: rate() refuses it (no_price_for_usage_type).
    ok &= ~(~priced & ~override & ~is_call & (quantities > 0)).any(axis=1)
    # Amounts must stay within int64 (a product below _INT64_SAFE, checked by division).
    ok &= ~(quantities > _INT64_SAFE // np.maximum(usd_mult, 1)).any(axis=1)
    usd = np.where(priced, _round_div_each(quantities * usd_mult, usd_div), 0)
    base = np.where(override, quantities, usd)
    ok &= ~(base > _INT64_SAFE // np.maximum(credits_mult, 1)).any(axis=1)
    base = np.where(ok[:, None], base, 0)
    credits = _round_div_each(base * credits_mult, credits_div)
    present &= ok[:, None]
    usd = np.where(present, usd, 0)
    credits = np.where(present, credits, 0)
    rows, columns = np.nonzero(present)  # row-major: each call's lines in type order
    kept = np.nonzero(ok)[0]
    offsets = np.zeros(len(kept) + 1, dtype=np.int32)
    np.cumsum(present[kept].sum(axis=1), out=offsets[1:])
    return (
        LineColumns(
            offsets=offsets,
            usage_types=_USAGE_TYPES[columns],
            units=_UNITS[columns],
            tokens=quantities[rows, columns],
            unit_price_credits=unit_price_credits[rows, columns],
            unit_price_usd=unit_price_usd[rows, columns],
            credits=credits[rows, columns],
            usd=usd[rows, columns],
            credits_total=credits[kept].sum(axis=1),
            usd_total=usd[kept].sum(axis=1),
        ),
        ok,
    )


def _round_div_each(
    values: npt.NDArray[np.int64], divisors: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """values / divisors elementwise, rounded half to even (values >= 0, divisors >= 1)."""
    quotient, remainder = np.divmod(values, divisors)
    up = (2 * remainder > divisors) | ((2 * remainder == divisors) & (quotient % 2 == 1))
    result: npt.NDArray[np.int64] = quotient + up
    return result


_USAGE_TYPES: Final = np.array(_MODEL_TYPES, dtype=object)
_UNITS: Final = np.array([r.USAGE_UNITS[t] for t in _MODEL_TYPES], dtype=object)
