"""Cached and reasoning tokens, unpriced usage, jobs, API calls, contracts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.records import (
    JOB_DEFINITION,
    JOB_LOG,
    Event,
    JobDefinitionData,
    JobLogData,
    PricedLine,
    Rating,
)
from tests.rating.helpers import NOON, api_event, job_event, model_event


def lines_of(rating: Rating | None) -> dict[str, PricedLine]:
    assert rating is not None
    return {line.usage_type: line for line in rating.lines}


# --- (b) cached tokens are billed once, at the cache price ---------------------------


def test_cache_reads_are_not_billed_twice(catalog: Catalog, book: PriceBook) -> None:
    # gpt-4o: $2.50 input, $1.25 cached input per million tokens; 8,000 of 10,000 cached.
    event = model_event("gpt-4o", input_tokens=10_000, cache_read_tokens=8_000)
    rating = rate(event, plan="enterprise", catalog=catalog, book=book)
    lines = lines_of(rating)
    assert lines["input"].quantity == 2_000
    assert lines["cache_read"].quantity == 8_000
    assert rating is not None
    assert rating.usd == Decimal("0.015")  # 2,000 x 2.5e-6 + 8,000 x 1.25e-6, not 0.035


def test_cache_writes_and_reads_at_their_own_prices(catalog: Catalog, book: PriceBook) -> None:
    # Claude Sonnet 4: $3 input, $3.75 cache write, $0.30 cache read per million tokens.
    event = model_event(
        "claude-sonnet-4", input_tokens=10_000, cache_write_tokens=6_000, cache_read_tokens=3_000
    )
    lines = lines_of(rate(event, plan="enterprise", catalog=catalog, book=book))
    assert {k: (v.quantity, v.usd) for k, v in lines.items()} == {
        "input": (1_000, Decimal("0.003")),
        "cache_read": (3_000, Decimal("0.0009")),
        "cache_write": (6_000, Decimal("0.0225")),
        "output": (0, 0),
    }


def test_cache_larger_than_input_leaves_no_uncached_input(
    catalog: Catalog, book: PriceBook
) -> None:
    """Bad data (cache > input): the cache count is trusted, uncached input is 0."""
    event = model_event("gpt-4o", input_tokens=100, cache_read_tokens=500)
    rating = rate(event, plan="enterprise", catalog=catalog, book=book)
    lines = lines_of(rating)
    assert (lines["input"].quantity, lines["cache_read"].quantity) == (0, 500)
    assert rating is not None and rating.priced
    assert rating.usd == Decimal("0.000625")


def test_cache_without_a_cache_price_costs_input(catalog: Catalog, book: PriceBook) -> None:
    # Mistral Large has no cache price: cached tokens cost $2 like other input.
    event = model_event("mistral-large-latest", input_tokens=1_000, cache_read_tokens=400)
    lines = lines_of(rate(event, plan="enterprise", catalog=catalog, book=book))
    assert lines["cache_read"].unit_price_usd == lines["input"].unit_price_usd == Decimal("2e-6")
    assert lines["input"].usd + lines["cache_read"].usd == Decimal("0.002")


def test_reasoning_is_part_of_output(catalog: Catalog, book: PriceBook) -> None:
    event = model_event("gpt-4o", output_tokens=1_000, reasoning_tokens=300)
    rating = rate(event, plan="enterprise", catalog=catalog, book=book)
    lines = lines_of(rating)
    assert (lines["output"].quantity, lines["reasoning"].quantity) == (700, 300)
    assert lines["reasoning"].unit_price_usd == lines["output"].unit_price_usd
    assert rating is not None and rating.usd == Decimal("0.01")  # 1,000 x $10 / M


# --- (e) usage that cannot be priced keeps its quantities ----------------------------


def assert_unpriced(rating: Rating | None, reason: str) -> dict[str, PricedLine]:
    assert rating is not None
    assert not rating.priced
    assert rating.unpriced_reason == reason
    assert rating.credits == rating.usd == 0
    for line in rating.lines:
        assert line.credits == line.usd == line.unit_price_credits == line.unit_price_usd == 0
    return {line.usage_type: line for line in rating.lines}


def test_unknown_model_keeps_quantities(catalog: Catalog, book: PriceBook) -> None:
    event = model_event(
        "acme-finetune-7b",
        "acme-cloud",
        input_tokens=1_000,
        cache_read_tokens=200,
        output_tokens=50,
        reasoning_tokens=10,
    )
    rating = rate(event, plan="pro", catalog=catalog, book=book)
    lines = assert_unpriced(rating, "unknown_model")
    assert {k: v.quantity for k, v in lines.items()} == {
        "input": 800,
        "cache_read": 200,
        "output": 40,
        "reasoning": 10,
    }
    assert rating is not None
    assert (rating.item, rating.provider, rating.kind) == (
        "acme-finetune-7b",
        "acme-cloud",
        "model",
    )


def test_usage_type_without_price(catalog: Catalog, book: PriceBook) -> None:
    # An embedding model has an input price only.
    event = model_event("text-embedding-3-small", "openai", input_tokens=500, output_tokens=5)
    lines = assert_unpriced(
        rate(event, plan="pro", catalog=catalog, book=book), "no_price_for_usage_type"
    )
    assert (lines["input"].quantity, lines["output"].quantity) == (500, 5)
    event = model_event("text-embedding-3-small", "openai", input_tokens=500)
    rating = rate(event, plan="pro", catalog=catalog, book=book)
    assert rating is not None and rating.priced


def test_unknown_plan_and_negative_counts(catalog: Catalog, book: PriceBook) -> None:
    event = model_event("gpt-4o", input_tokens=10)
    assert_unpriced(rate(event, plan="platinum", catalog=catalog, book=book), "unknown_plan")
    event = model_event("gpt-4o", input_tokens=-10, output_tokens=5)
    lines = assert_unpriced(rate(event, plan="pro", catalog=catalog, book=book), "invalid_usage")
    assert (lines["input"].quantity, lines["output"].quantity) == (0, 5)


# --- jobs and API calls --------------------------------------------------------------


def test_finished_job_runs_are_priced_by_kind(catalog: Catalog, book: PriceBook) -> None:
    for status in ("succeeded", "failed", "cancelled", "timed_out"):
        rating = rate(job_event("asset", status), plan="free", catalog=catalog, book=book)
        assert rating is not None and rating.priced
        (line,) = rating.lines
        assert (line.usage_type, line.unit, line.quantity) == (
            "compute_seconds",
            "second",
            Decimal("12.5"),
        )
        assert line.unit_price_credits == Decimal("0.05")
        assert rating.credits == line.credits == Decimal("0.625")
        assert rating.usd == 0
        assert (rating.kind, rating.item) == ("job", "asset")


def test_events_that_are_not_usage(catalog: Catalog, book: PriceBook) -> None:
    for status in ("queued", "running"):
        assert rate(job_event("asset", status), plan="pro", catalog=catalog, book=book) is None
    definition = JobDefinitionData(job_id="j1", kind="scheduler", name="nightly")
    log = JobLogData(job_id="j1", run_id="r1", kind="scheduler", level="info", message="hi")
    for event_type, data in ((JOB_DEFINITION, definition), (JOB_LOG, log)):
        event = Event(id="x", source="t", type=event_type, time=NOON, data=data, account_id="a")
        assert rate(event, plan="pro", catalog=catalog, book=book) is None


def test_finished_run_without_duration(catalog: Catalog, book: PriceBook) -> None:
    event = job_event("webhook", "succeeded", None)
    lines = assert_unpriced(rate(event, plan="pro", catalog=catalog, book=book), "missing_duration")
    assert lines["compute_seconds"].quantity == 0


def test_job_kind_missing_from_book(catalog: Catalog, book: PriceBook) -> None:
    rates = {k: v for k, v in book.job_credits_per_second.items() if k != "webhook"}
    partial = PriceBook(
        version=book.version,
        source=book.source,
        plan_credits_per_usd=book.plan_credits_per_usd,
        job_credits_per_second=rates,
        api_credits_per_call=book.api_credits_per_call,
        accounts=book.accounts,
    )
    lines = assert_unpriced(
        rate(job_event("webhook"), plan="pro", catalog=catalog, book=partial), "unknown_job_kind"
    )
    assert lines["compute_seconds"].quantity == Decimal("12.5")


def test_api_call(catalog: Catalog, book: PriceBook) -> None:
    rating = rate(api_event("/v1/things"), plan="starter", catalog=catalog, book=book)
    assert rating is not None and rating.priced
    (line,) = rating.lines
    assert (line.usage_type, line.unit, line.quantity, line.credits) == (
        "call",
        "call",
        1,
        Decimal("0.001"),
    )
    assert (rating.kind, rating.item, rating.usd) == ("api", "/v1/things", 0)


# --- (f) per-account contracts ---------------------------------------------------------


def test_model_override_and_discount(catalog: Catalog, book: PriceBook) -> None:
    tokens = {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 1_000}
    listed = lines_of(rate(model_event("gpt-4o", **tokens), plan="pro", catalog=catalog, book=book))
    event = model_event("gpt-4o-2024-08-06", account_id="acme", **tokens)
    rating = rate(event, plan="pro", catalog=catalog, book=book)
    acme = lines_of(rating)
    # Override: input at 0.0002 credits per token, no discount on top.
    assert acme["input"].unit_price_credits == Decimal("0.0002")
    assert acme["input"].credits == 6_000 * Decimal("0.0002")
    # Everything else: list price (USD x 110 on pro) less 20 %.
    for usage_type in ("cache_read", "output"):
        assert acme[usage_type].credits == listed[usage_type].credits * Decimal("0.8")
        assert acme[usage_type].unit_price_credits == listed[
            usage_type
        ].unit_price_credits * Decimal("0.8")
    # USD is the catalog's list price whatever the contract.
    assert [line.usd for line in acme.values()] == [line.usd for line in listed.values()]
    assert rating is not None and rating.credits == sum(line.credits for line in acme.values())


def test_other_models_get_the_discount_only(catalog: Catalog, book: PriceBook) -> None:
    tokens = {"input_tokens": 10_000, "output_tokens": 1_000}
    listed = rate(model_event("gpt-4o-mini", **tokens), plan="pro", catalog=catalog, book=book)
    acme = rate(
        model_event("gpt-4o-mini", account_id="acme", **tokens),
        plan="pro",
        catalog=catalog,
        book=book,
    )
    assert listed is not None and acme is not None
    assert acme.credits == listed.credits * Decimal("0.8")


def test_wildcard_override(catalog: Catalog, book: PriceBook) -> None:
    event = model_event(
        "claude-sonnet-4", account_id="wild", input_tokens=3_000, output_tokens=1_000
    )
    rating = rate(event, plan="pro", catalog=catalog, book=book)
    assert rating is not None and rating.credits == Decimal("0.004")


@pytest.mark.parametrize(
    ("kind", "credits"),
    [("asset", Decimal("0.375")), ("scheduler", Decimal("0.2"))],  # override; 12.5 s x 0.02 x 0.8
)
def test_job_override_and_discount(
    catalog: Catalog, book: PriceBook, kind: str, credits: Decimal
) -> None:
    rating = rate(job_event(kind, account_id="acme"), plan="pro", catalog=catalog, book=book)
    assert rating is not None and rating.credits == credits


def test_api_override_and_discount(catalog: Catalog, book: PriceBook) -> None:
    export = rate(
        api_event("/v1/export", account_id="acme"), plan="pro", catalog=catalog, book=book
    )
    other = rate(api_event("/v1/things", account_id="acme"), plan="pro", catalog=catalog, book=book)
    assert export is not None and export.credits == Decimal("0.5")
    assert other is not None and other.credits == Decimal("0.0008")
