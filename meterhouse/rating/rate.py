"""Rating: what one usage event costs, in credits and USD, line by line.

``rate`` is a pure function of the event, the account's plan, the catalog and the price
book: no clock, no I/O, no thread-local Decimal context (it computes in money.CONTEXT). So
re-rating the same event with the same ``price_version`` always gives the same Rating, and
a statement can be reproduced from stored events.

Meaning of the amounts:

* ``usd`` is the LLM catalog's list price of the usage; ``credits`` is what this account
  pays. For a model line, credits = usd x the plan's ``credits_per_usd`` x (1 - discount),
  unless the account has an override, which sets credits per unit outright. Credits are
  computed from the rounded USD, so with no override and no discount a line's credits are
  exactly its usd x credits_per_usd.
* Jobs and API calls have no catalog price: they are priced in credits by the book, and
  their usd is 0 (there is no list cost to report, and a USD figure derived from credits
  would vary with the plan's margin).
* Token lines are disjoint (catalog.split_tokens): ``input`` is uncached input,
  ``cache_read``/``cache_write`` the cached part, ``output`` the non-reasoning part and
  ``reasoning`` the reasoning tokens, priced at the catalog's reasoning price if it has
  one, else at the output price (as the provider bills them). Summing a rating's token
  quantities therefore gives the tokens used, each once.
* Every amount is rounded once, half-even, to 12 places; an event's totals are the exact
  sums of its lines. Unit prices are rounded for storage; amounts are computed from the
  unrounded unit price.

A usage event that cannot be priced still gets a Rating, with ``priced=False``, a reason,
zero prices and its quantities, so usage rollups count it and the gap is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from typing import Final, Literal

from meterhouse.rating.catalog import Catalog, QuotedLine, split_tokens
from meterhouse.rating.money import CONTEXT, ZERO, quantize
from meterhouse.rating.price_book import AccountTerms, PriceBook
from meterhouse.records import (
    FINAL_RUN_STATUSES,
    USAGE_UNITS,
    ApiCallData,
    Event,
    JobRunData,
    ModelCallData,
    PricedLine,
    Rating,
)

Kind = Literal["model", "job", "api"]

UNKNOWN_MODEL: Final = "unknown_model"
UNKNOWN_PLAN: Final = "unknown_plan"
UNKNOWN_JOB_KIND: Final = "unknown_job_kind"
NO_PRICE: Final = "no_price_for_usage_type"
INVALID_USAGE: Final = "invalid_usage"  # a negative or non-finite count
MISSING_DURATION: Final = "missing_duration"  # a finished run that reports no compute time
CATALOG_MISMATCH: Final = "catalog_mismatch"  # lines disagree with genai_prices.calc_price
CATALOG_ERROR: Final = "catalog_error"  # the catalog refused to price the usage


def is_usage(event: Event) -> bool:
    """Whether ``rate`` prices the event: model calls, API calls and finished job runs."""
    data = event.data
    if isinstance(data, JobRunData):
        return data.status in FINAL_RUN_STATUSES
    return isinstance(data, ModelCallData | ApiCallData)


def rate(event: Event, *, plan: str, catalog: Catalog, book: PriceBook) -> Rating | None:
    """The Rating of a usage event, or None for events that are not usage (job
    definitions, logs, job runs that have not finished)."""
    data = event.data
    version = f"{catalog.version}+{book.version}"
    with localcontext(CONTEXT):
        if isinstance(data, ModelCallData):
            return _model_call(event, data, plan, catalog, book, version)
        if isinstance(data, JobRunData) and data.status in FINAL_RUN_STATUSES:
            return _job_run(data, book.terms(event.account_id), book, version)
        if isinstance(data, ApiCallData):
            return _api_call(data, book.terms(event.account_id), book, version)
    return None


def _model_call(
    event: Event, data: ModelCallData, plan: str, catalog: Catalog, book: PriceBook, version: str
) -> Rating:
    reported = (
        data.input_tokens,
        data.output_tokens,
        data.cache_read_tokens,
        data.cache_write_tokens,
        data.reasoning_tokens,
    )
    input_tokens, output_tokens, cache_read, cache_write, reasoning = (max(0, n) for n in reported)
    tokens = split_tokens(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=cache_read,
        cache_write=cache_write,
        reasoning=reasoning,
    )
    model = catalog.resolve(data.model, data.provider)
    if min(reported) < 0 or model is None:
        reason = INVALID_USAGE if min(reported) < 0 else UNKNOWN_MODEL
        return _unpriced("model", data.model, data.provider, tokens, reason, version)
    item, provider = model.model_id, model.provider
    credits_per_usd = book.credits_per_usd(plan)
    if credits_per_usd is None:
        return _unpriced("model", item, provider, tokens, UNKNOWN_PLAN, version)
    try:
        quote = model.quote(tokens, at=event.time)
    except ValueError:
        return _unpriced("model", item, provider, tokens, CATALOG_ERROR, version)
    if sum((q.usd for q in quote.lines), Decimal(0)) != quote.catalog_total_usd:
        return _unpriced("model", item, provider, tokens, CATALOG_MISMATCH, version)
    terms = book.terms(event.account_id)
    lines: list[PricedLine] = []
    for quoted in quote.lines:
        override = terms.override("model", item, quoted.usage_type)
        if quoted.quantity and quoted.usd_per_unit is None and override is None:
            quantities = {q.usage_type: q.quantity for q in quote.lines}
            return _unpriced("model", item, provider, quantities, NO_PRICE, version)
        lines.append(_model_line(quoted, override, credits_per_usd * terms.discount_factor))
    return _rating("model", item, provider, lines, version)


def _model_line(
    quoted: QuotedLine, override: Decimal | None, credits_per_usd: Decimal
) -> PricedLine:
    """``credits_per_usd`` is the plan's rate with the account's discount already applied."""
    usd_per_unit = quoted.usd_per_unit or Decimal(0)
    usd = quantize(quoted.usd)
    if override is not None:
        credits_per_unit, credits = override, quantize(quoted.quantity * override)
    else:
        credits_per_unit, credits = usd_per_unit * credits_per_usd, quantize(usd * credits_per_usd)
    return PricedLine(
        usage_type=quoted.usage_type,
        quantity=quantize(Decimal(quoted.quantity)),
        unit=USAGE_UNITS[quoted.usage_type],
        unit_price_credits=quantize(credits_per_unit),
        unit_price_usd=quantize(usd_per_unit),
        credits=credits,
        usd=usd,
    )


def _job_run(data: JobRunData, terms: AccountTerms, book: PriceBook, version: str) -> Rating:
    seconds = data.duration_seconds
    if seconds is None or not seconds.is_finite() or seconds < 0:
        reason = MISSING_DURATION if seconds is None else INVALID_USAGE
        return _unpriced("job", data.kind, "", {"compute_seconds": 0}, reason, version)
    quantity = quantize(seconds)
    per_second = job_credits_per_second(terms, book, data.kind)
    if per_second is None:
        quantities = {"compute_seconds": quantity}
        return _unpriced("job", data.kind, "", quantities, UNKNOWN_JOB_KIND, version)
    line = _credits_line("compute_seconds", quantity, per_second)
    return _rating("job", data.kind, "", [line], version)


def job_credits_per_second(terms: AccountTerms, book: PriceBook, kind: str) -> Decimal | None:
    """The job rule: the account's override for the kind, else the book's rate less the
    account's discount; None for a kind the book does not price. In money.CONTEXT."""
    override = terms.override("job", kind, "compute_seconds")
    if override is not None:
        return override
    list_rate = book.job_rate(kind)
    if list_rate is None:
        return None
    return list_rate * terms.discount_factor


def api_credits_per_call(terms: AccountTerms, book: PriceBook, route: str) -> Decimal:
    """The API rule: the account's override for the route, else the book's price per call
    less the account's discount. In money.CONTEXT."""
    override = terms.override("api", route, "call")
    if override is not None:
        return override
    return book.api_credits_per_call * terms.discount_factor


def _api_call(data: ApiCallData, terms: AccountTerms, book: PriceBook, version: str) -> Rating:
    per_call = api_credits_per_call(terms, book, data.route)
    line = _credits_line("call", Decimal(1), per_call)
    return _rating("api", data.route, "", [line], version)


def _credits_line(usage_type: str, quantity: Decimal, credits_per_unit: Decimal) -> PricedLine:
    """A line the book prices in credits only (jobs, API calls): its usd is 0."""
    return PricedLine(
        usage_type=usage_type,
        quantity=quantize(quantity),
        unit=USAGE_UNITS[usage_type],
        unit_price_credits=quantize(credits_per_unit),
        unit_price_usd=ZERO,
        credits=quantize(quantize(quantity) * credits_per_unit),
        usd=ZERO,
    )


def _rating(kind: Kind, item: str, provider: str, lines: list[PricedLine], version: str) -> Rating:
    return Rating(
        kind=kind,
        item=item,
        provider=provider,
        lines=tuple(lines),
        credits=sum((line.credits for line in lines), ZERO),
        usd=sum((line.usd for line in lines), ZERO),
        priced=True,
        unpriced_reason="",
        price_version=version,
    )


def _unpriced(
    kind: Kind,
    item: str,
    provider: str,
    quantities: Mapping[str, int | Decimal],
    reason: str,
    version: str,
) -> Rating:
    lines = tuple(
        PricedLine(
            usage_type=usage_type,
            quantity=quantize(Decimal(quantity)),
            unit=USAGE_UNITS[usage_type],
            unit_price_credits=ZERO,
            unit_price_usd=ZERO,
            credits=ZERO,
            usd=ZERO,
        )
        for usage_type, quantity in quantities.items()
    )
    return Rating(
        kind=kind,
        item=item,
        provider=provider,
        lines=lines,
        credits=ZERO,
        usd=ZERO,
        priced=False,
        unpriced_reason=reason,
        price_version=version,
    )
