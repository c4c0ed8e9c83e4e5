"""Properties of rating over generated events (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, Context, Decimal, localcontext

import genai_prices
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.rating.price_book import PLANS
from meterhouse.records import JOB_KINDS, Event, ModelCallData, Rating
from tests.rating.helpers import TEST_BOOK, api_event, job_event, model_event, walk

CATALOG = Catalog.load()
BOOK = PriceBook.parse(TEST_BOOK, source="test_book.toml")
NAMED = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini-2024-07-18", ""),
    ("anthropic/claude-sonnet-4", ""),
    ("claude-sonnet-4-5", ""),
    ("gemini-2.5-flash", "gcp.vertex_ai"),
    ("gemini-2.5-pro", ""),
    ("mistral-large-latest", ""),
    ("deepseek-chat", ""),
    ("o3", "openai"),
    ("sonar", "perplexity"),
    ("acme-finetune-7b", ""),
]
ANY_MODEL = st.sampled_from([(m.model_id, m.provider) for m in CATALOG.models()])
TIMES = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
ACCOUNTS = st.sampled_from(["acct_1", "acme", "wild"])  # list prices; discount+overrides; overrides
TOKENS = st.integers(min_value=0, max_value=3_000_000)


@st.composite
def model_events(draw: st.DrawFn) -> tuple[Event, dict[str, int]]:
    model, provider = draw(st.one_of(st.sampled_from(NAMED), ANY_MODEL))
    tokens = {
        "input_tokens": draw(TOKENS),
        "output_tokens": draw(st.integers(0, 200_000)),
        "cache_read_tokens": draw(st.one_of(st.just(0), TOKENS)),
        "cache_write_tokens": draw(st.one_of(st.just(0), st.integers(0, 500_000))),
        "reasoning_tokens": draw(st.one_of(st.just(0), st.integers(0, 200_000))),
    }
    event = model_event(model, provider, at=draw(TIMES), account_id=draw(ACCOUNTS), **tokens)
    return event, tokens


@st.composite
def usage_events(draw: st.DrawFn) -> Event:
    choice = draw(st.sampled_from(["model", "job", "api"]))
    account = draw(ACCOUNTS)
    if choice == "model":
        return draw(model_events())[0]
    if choice == "job":
        seconds = draw(st.decimals(min_value=0, max_value=10**7, places=draw(st.integers(0, 15))))
        return job_event(draw(st.sampled_from(JOB_KINDS)), account_id=account, seconds=seconds)
    return api_event(draw(st.sampled_from(["/v1/export", "/v1/things"])), account_id=account)


def check_totals(rating: Rating) -> None:
    assert rating.credits == sum(line.credits for line in rating.lines)
    assert rating.usd == sum(line.usd for line in rating.lines)


@settings(deadline=None, max_examples=300)
@given(event=usage_events(), plan=st.sampled_from(PLANS))
def test_deterministic_exact_and_float_free(event: Event, plan: str) -> None:
    rating = rate(event, plan=plan, catalog=CATALOG, book=BOOK)
    assert rating is not None
    # Pure: the same answer again, whatever Decimal context the caller happens to have.
    with localcontext(Context(prec=4, rounding=ROUND_DOWN)):
        assert rate(event, plan=plan, catalog=CATALOG, book=BOOK) == rating
    for leaf in walk(rating):
        assert type(leaf) in (str, bool, Decimal), leaf
        if isinstance(leaf, Decimal):
            assert leaf.as_tuple().exponent == -12  # quantized for Decimal(38, 12)
            assert leaf >= 0
    check_totals(rating)


@settings(deadline=None, max_examples=300)
@given(drawn=model_events(), plan=st.sampled_from(PLANS))
def test_model_credits_follow_usd_and_calc_price(
    drawn: tuple[Event, dict[str, int]], plan: str
) -> None:
    event, tokens = drawn
    rating = rate(event, plan=plan, catalog=CATALOG, book=BOOK)
    assert rating is not None
    check_totals(rating)
    # Quantities partition the tokens used, each counted once (plus a request line if any).
    token_lines = [line for line in rating.lines if line.unit == "token"]
    used = max(tokens["input_tokens"], tokens["cache_read_tokens"] + tokens["cache_write_tokens"])
    used += max(tokens["output_tokens"], tokens["reasoning_tokens"])
    assert sum(line.quantity for line in token_lines) == used
    if not rating.priced:
        assert rating.credits == rating.usd == 0
        return
    credits_per_usd = BOOK.credits_per_usd(plan)
    assert credits_per_usd is not None
    if event.account_id == "acct_1":  # no contract: credits are exactly usd x the plan rate
        for line in rating.lines:
            assert line.credits == line.usd * credits_per_usd
        assert rating.credits == rating.usd * credits_per_usd
    consistent = (
        tokens["cache_read_tokens"] + tokens["cache_write_tokens"] <= tokens["input_tokens"]
        and tokens["reasoning_tokens"] <= tokens["output_tokens"]
    )
    if consistent:  # calc_price refuses parts larger than their whole
        usage = genai_prices.Usage(
            input_tokens=tokens["input_tokens"],
            output_tokens=tokens["output_tokens"],
            cache_read_tokens=tokens["cache_read_tokens"],
            cache_write_tokens=tokens["cache_write_tokens"],
            output_reasoning_tokens=tokens["reasoning_tokens"],
        )
        # calc_price's own model lookup, then its price (some catalog ids do not match
        # their own match rules, so look the model up the way rating did).
        assert isinstance(event.data, ModelCallData)
        model = CATALOG.resolve(event.data.model, event.data.provider)
        assert model is not None
        expected = model.info.calc_price(
            usage, model.provider_info, genai_request_timestamp=event.time
        ).total_price
        # Lines are rounded one by one: at most half a unit of the 12th place each.
        assert abs(rating.usd - expected) <= Decimal("0.5e-12") * len(rating.lines)


@settings(deadline=None, max_examples=100)
@given(
    kind=st.sampled_from(JOB_KINDS),
    seconds=st.decimals(min_value=0, max_value=10**6, places=6),
    plan=st.sampled_from(PLANS),
)
def test_job_credits_are_seconds_times_rate(kind: str, seconds: Decimal, plan: str) -> None:
    rating = rate(job_event(kind, seconds=seconds), plan=plan, catalog=CATALOG, book=BOOK)
    assert rating is not None and rating.priced
    (line,) = rating.lines
    assert line.quantity == seconds
    assert line.credits == seconds * BOOK.job_credits_per_second[kind]
    assert rating.credits == line.credits and rating.usd == 0
