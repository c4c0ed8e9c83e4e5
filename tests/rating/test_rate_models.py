"""Model calls priced against the real catalog, checked against genai_prices.calc_price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.rating.money import quantize
from meterhouse.records import Rating
from tests.rating.helpers import NOON, model_event

# (model as sent, provider as sent, expected catalog provider, token counts, request time)
CASES = [
    ("gpt-4o", "openai", "openai", {"input_tokens": 12_345, "cache_read_tokens": 4_000}, NOON),
    (
        "gpt-4o-mini-2024-07-18",
        "",
        "openai",
        {
            "input_tokens": 100_000,
            "cache_read_tokens": 50_000,
            "output_tokens": 20_000,
            "reasoning_tokens": 0,
        },
        NOON,
    ),
    (
        "claude-sonnet-4-20250514",
        "anthropic",
        "anthropic",
        {
            "input_tokens": 30_000,
            "cache_read_tokens": 20_000,
            "cache_write_tokens": 5_000,
            "output_tokens": 2_000,
        },
        NOON,
    ),
    # Above the 200k-token tier: every token pays the tier price.
    (
        "claude-sonnet-4-5",
        "",
        "anthropic",
        {
            "input_tokens": 250_000,
            "cache_read_tokens": 100_000,
            "cache_write_tokens": 10_000,
            "output_tokens": 4_000,
            "reasoning_tokens": 1_000,
        },
        NOON,
    ),
    (
        "gemini-2.5-flash",
        "gcp.gemini",
        "google",
        {
            "input_tokens": 8_000,
            "cache_read_tokens": 2_000,
            "output_tokens": 1_500,
            "reasoning_tokens": 700,
        },
        NOON,
    ),
    (
        "google/gemini-2.5-pro",
        "",
        "google",
        {"input_tokens": 300_000, "output_tokens": 10_000},
        NOON,
    ),
    (
        "mistral-large-latest",
        "",
        "mistral",
        {"input_tokens": 5_000, "cache_read_tokens": 1_000, "output_tokens": 5_000},
        NOON,
    ),
    # DeepSeek's peak-hour price (time-of-day condition) and OpenAI o3 before its price cut.
    (
        "deepseek-chat",
        "deepseek",
        "deepseek",
        {"input_tokens": 9_000, "cache_read_tokens": 3_000, "output_tokens": 700},
        datetime(2026, 11, 5, 2, 0, tzinfo=UTC),
    ),
    (
        "o3",
        "openai",
        "openai",
        {"input_tokens": 9_000, "output_tokens": 7_000, "reasoning_tokens": 6_000},
        datetime(2025, 1, 1, tzinfo=UTC),
    ),
    (
        "o3",
        "openai",
        "openai",
        {"input_tokens": 9_000, "output_tokens": 7_000, "reasoning_tokens": 6_000},
        NOON,
    ),
]


def calc_usd(model: str, provider: str, tokens: dict[str, int], at: datetime) -> Decimal:
    usage = genai_prices.Usage(
        input_tokens=tokens.get("input_tokens", 0),
        cache_read_tokens=tokens.get("cache_read_tokens", 0),
        cache_write_tokens=tokens.get("cache_write_tokens", 0),
        output_tokens=tokens.get("output_tokens", 0),
        output_reasoning_tokens=tokens.get("reasoning_tokens", 0),
    )
    ref = model.split("/", 1)[1] if "/" in model else model
    price = genai_prices.calc_price(
        usage, ref, provider_id=provider or None, genai_request_timestamp=at
    )
    return price.total_price


def priced(rating: Rating | None) -> Rating:
    assert rating is not None
    assert rating.priced, rating.unpriced_reason
    return rating


@pytest.mark.parametrize(("model", "provider", "expected_provider", "tokens", "at"), CASES)
def test_usd_agrees_with_calc_price(
    catalog: Catalog,
    shipped_book: PriceBook,
    model: str,
    provider: str,
    expected_provider: str,
    tokens: dict[str, int],
    at: datetime,
) -> None:
    rating = priced(
        rate(
            model_event(model, provider, at=at, **tokens),
            plan="pro",
            catalog=catalog,
            book=shipped_book,
        )
    )
    assert rating.kind == "model"
    assert rating.provider == expected_provider
    assert rating.usd == quantize(calc_usd(model, provider, tokens, at))
    assert rating.usd > 0
    assert rating.usd == sum(line.usd for line in rating.lines)
    assert rating.credits == sum(line.credits for line in rating.lines)
    rate_pro = shipped_book.credits_per_usd("pro")
    assert rate_pro is not None
    assert rating.credits == rating.usd * rate_pro
    tokens_used = tokens.get("input_tokens", 0) + tokens.get("output_tokens", 0)
    assert sum(line.quantity for line in rating.lines) == tokens_used
    assert rating.price_version == f"{catalog.version}+{shipped_book.version}"


def test_gpt_4o_by_hand(catalog: Catalog, book: PriceBook) -> None:
    """$2.50 input, $1.25 cached input, $10 output per million tokens."""
    event = model_event(
        "gpt-4o", "openai", input_tokens=12_345, cache_read_tokens=4_000, output_tokens=678
    )
    rating = priced(rate(event, plan="enterprise", catalog=catalog, book=book))
    lines = {line.usage_type: line for line in rating.lines}
    assert list(lines) == ["input", "cache_read", "output"]
    assert lines["input"].quantity == 8_345
    assert lines["input"].unit_price_usd == Decimal("0.0000025")
    assert lines["input"].usd == Decimal("0.0208625")
    assert lines["cache_read"].usd == Decimal("0.005")
    assert lines["output"].usd == Decimal("0.00678")
    assert rating.usd == Decimal("0.0326425")
    assert rating.credits == Decimal("3.26425")  # enterprise: 100 credits per USD
    assert lines["input"].unit_price_credits == Decimal("0.00025")
    assert all(line.unit == "token" for line in rating.lines)


def test_tier_price_applies_above_threshold(catalog: Catalog, book: PriceBook) -> None:
    small = rate(
        model_event("claude-sonnet-4-5", input_tokens=100_000),
        plan="pro",
        catalog=catalog,
        book=book,
    )
    large = rate(
        model_event("claude-sonnet-4-5", input_tokens=250_000),
        plan="pro",
        catalog=catalog,
        book=book,
    )
    assert priced(small).lines[0].unit_price_usd == Decimal("0.000003")
    assert priced(large).lines[0].unit_price_usd == Decimal("0.000006")


def test_request_fee_is_a_call_line(catalog: Catalog, book: PriceBook) -> None:
    event = model_event("sonar", "perplexity", input_tokens=1_000, output_tokens=500)
    rating = priced(rate(event, plan="pro", catalog=catalog, book=book))
    call = rating.lines[-1]
    assert (call.usage_type, call.quantity, call.unit) == ("call", 1, "call")
    assert call.usd > 0
    assert rating.usd == quantize(
        calc_usd("sonar", "perplexity", {"input_tokens": 1_000, "output_tokens": 500}, NOON)
    )


def test_global_snapshot_does_not_leak_into_rating(catalog: Catalog, book: PriceBook) -> None:
    """genai-prices' auto-updater installs a global snapshot; rating must keep the bundled one."""
    from genai_prices import data_snapshot

    event = model_event("gpt-4o", input_tokens=1_000, output_tokens=1_000)
    before = rate(event, plan="pro", catalog=catalog, book=book)
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    )
    try:
        assert rate(event, plan="pro", catalog=Catalog.load(), book=book) == before
    finally:
        data_snapshot.set_custom_snapshot(None)
