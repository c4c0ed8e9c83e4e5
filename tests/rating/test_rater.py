"""The shipped Rater equals rate(): on random events over the whole catalog, with contracts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhouse import records as r
from meterhouse.rating import Catalog, PriceBook, rate
from meterhouse.rating.rater import Rater, batch_lines, from_rating

BOOK = """
version = "test-book"
[plans.free]
credits_per_usd = "125"
[plans.starter]
credits_per_usd = "120.5"
[plans.pro]
credits_per_usd = "110"
[plans.enterprise]
credits_per_usd = "99.999"
[jobs.credits_per_second]
scheduler = "0.02"
asset = "0.0500001"
webhook = "0.01"
notification = "0.005"
[api]
credits_per_call = "0.001"

[accounts.discounted]
discount_percent = "12.5"

[accounts.odd]
discount_percent = "33.333333333"
[[accounts.odd.overrides]]
kind = "job"
item = "asset"
usage_type = "compute_seconds"
credits_per_unit = "0.0000000000007"
[[accounts.odd.overrides]]
kind = "api"
item = "/v1/chat"
usage_type = "call"
credits_per_unit = "0.12345678901234567"

[accounts.contract]
[[accounts.contract.overrides]]
kind = "model"
item = "*"
usage_type = "output"
credits_per_unit = "0.00003"
[[accounts.contract.overrides]]
kind = "model"
item = "gpt-4o"
usage_type = "*"
credits_per_unit = "0.000002"
"""
ACCOUNTS = ("plain", "discounted", "odd", "contract")
PLANS = ("free", "starter", "pro", "enterprise", "no-such-plan")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@cache
def world() -> tuple[Catalog, PriceBook, Rater, list[tuple[str, str]]]:
    catalog, book = Catalog.load(), PriceBook.parse(BOOK)
    names = [(m.model_id, m.provider) for m in catalog.models()]
    return catalog, book, Rater(catalog, book), names


def model_names() -> st.SearchStrategy[tuple[str, str]]:
    names = world()[3]
    return st.one_of(
        st.sampled_from(names),
        st.sampled_from(names).map(lambda n: (n[0], "")),
        st.just(("no-such-model-7b", "")),
    )


tokens = st.one_of(st.integers(0, 3000), st.integers(0, 2_500_000), st.just(0))
times = st.integers(-800, 400).map(lambda days: NOW + timedelta(days=days, seconds=days * 977))


@st.composite
def model_calls(draw: st.DrawFn) -> r.Event:
    model, provider = draw(model_names())
    input_tokens = draw(tokens)
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(tokens)
    data = r.ModelCallData(
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=draw(st.integers(0, output)),
    )
    return _event(r.MODEL_CALL, data, draw(times), draw(st.sampled_from(ACCOUNTS)))


@st.composite
def other_usage(draw: st.DrawFn) -> r.Event:
    account = draw(st.sampled_from(ACCOUNTS))
    if draw(st.booleans()):
        seconds = draw(
            st.one_of(
                st.none(),
                st.decimals(0, 3_000_000, places=draw(st.integers(0, 15)), allow_nan=False),
            )
        )
        data: r.EventData = r.JobRunData(
            job_id="j",
            run_id="r",
            kind=draw(st.sampled_from(r.JOB_KINDS)),
            status=draw(st.sampled_from(r.RUN_STATUSES)),
            duration_seconds=seconds,
        )
        return _event(r.JOB_RUN, data, NOW, account)
    route = draw(st.sampled_from(("/v1/chat", "/v1/query", "/v1/assets/{id}")))
    return _event(r.API_CALL, r.ApiCallData(route=route), NOW, account)


def _event(kind: str, data: r.EventData, at: datetime, account: str) -> r.Event:
    return r.Event(id="e", source="s", type=kind, time=at, data=data, account_id=account)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=st.one_of(model_calls(), model_calls(), other_usage()), plan=st.sampled_from(PLANS))
def test_fast_rating_equals_rate(event: r.Event, plan: str) -> None:
    catalog, book, fast, _ = world()
    expected = rate(event, plan=plan, catalog=catalog, book=book)
    got = fast.rating(event, plan)
    assert got == expected
    if expected is not None:
        assert got is not None
        # Same digits too, not only equal values: the stored Decimal(38, 12) text.
        assert [str(x) for x in _amounts(got)] == [str(x) for x in _amounts(expected)]
        assert from_rating(expected).to_rating() == expected


def _amounts(rating: r.Rating) -> list[Decimal]:
    values = [rating.credits, rating.usd]
    for line in rating.lines:
        values += [line.quantity, line.unit_price_credits, line.unit_price_usd, line.credits]
        values.append(line.usd)
    return values


def test_the_fast_path_is_taken_for_the_usual_models() -> None:
    """Equality alone would also hold if everything fell back to rate()."""
    catalog, book, _, _ = world()
    fast = Rater(catalog, book)
    models = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "gemini-2.5-flash")
    for model in models:
        data = r.ModelCallData(model=model, input_tokens=1000, output_tokens=50)
        assert fast.units(_event(r.MODEL_CALL, data, NOW, "plain"), "pro", 0) is not None
    # Each model's lines were priced once and kept: the next events take the fast path.
    assert {key[0] for key in fast._simple} == set(models)


token_vectors = st.integers(0, 2_000_000).flatmap(
    lambda total: st.tuples(
        st.just(total),
        tokens,
        st.integers(0, total // 2),
        st.integers(0, total // 2),
        st.integers(0, 50),
    )
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=model_names(),
    plan=st.sampled_from(PLANS[:4]),
    account=st.sampled_from(ACCOUNTS),
    calls=st.lists(token_vectors, min_size=1, max_size=30),
)
def test_batch_lines_equal_the_lines_of_each_call(
    name: tuple[str, str], plan: str, account: str, calls: list[tuple[int, ...]]
) -> None:
    """The numpy path the column builder takes for calls priced by the same cached lines."""
    _, _, fast, _ = world()
    events = []
    for input_tokens, output, cache_read, cache_write, reasoning in calls:
        data = r.ModelCallData(
            model=name[0],
            provider=name[1],
            input_tokens=input_tokens,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=min(reasoning, output),
        )
        events.append(_event(r.MODEL_CALL, data, NOW, account))
    each = [fast.units(event, plan, 0) for event in events]
    assert isinstance(events[0].data, r.ModelCallData)
    known = fast.known_lines(events[0].data, plan, account)
    if known is None:
        return  # tiered, dated or unknown: never batched
    vectors = np.array(
        [
            [
                e.data.input_tokens,
                e.data.output_tokens,
                e.data.cache_read_tokens,
                e.data.cache_write_tokens,
                e.data.reasoning_tokens,
            ]
            for e in events
            if isinstance(e.data, r.ModelCallData)
        ],
        dtype=np.int64,
    )
    columns, ok = batch_lines([known], np.zeros(len(events), dtype=np.intp), vectors)
    kept = [rating for rating, fits in zip(each, ok, strict=True) if fits]
    for rating, fits in zip(each, ok, strict=True):
        if not fits:  # left to the per-call path: only what that path prices or refuses
            assert rating is None or max(vectors.max(), 0) > 10**7 or rating.priced
    for index, rating in enumerate(kept):
        assert rating is not None
        start, end = columns.offsets[index], columns.offsets[index + 1]
        lines = [
            (
                columns.usage_types[i],
                int(columns.tokens[i]) * 10**12,
                columns.units[i],
                int(columns.unit_price_credits[i]),
                int(columns.unit_price_usd[i]),
                int(columns.credits[i]),
                int(columns.usd[i]),
            )
            for i in range(start, end)
        ]
        assert lines == list(rating.lines)
        assert int(columns.credits_total[index]) == rating.credits
        assert int(columns.usd_total[index]) == rating.usd
        assert (known.item, known.provider) == (rating.item, rating.provider)
