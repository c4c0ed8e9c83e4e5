"""The burn-down as a pure function: order, overage, expiry, and its invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhouse.ledger.burndown import Consumption, Lot, burn_down
from meterhouse.ledger.errors import LedgerError

T0 = datetime(2026, 10, 1, tzinfo=UTC)
D = Decimal


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def states(run):  # type: ignore[no-untyped-def]
    return {s.lot.grant_id: s for s in run.lots}


def test_lower_priority_burns_first_then_earliest_expiry_then_oldest() -> None:
    lots = [
        Lot("old_no_expiry", D(10), 5, at(0)),
        Lot("young_no_expiry", D(10), 5, at(1)),
        Lot("expires_soon", D(10), 5, at(2), at(100)),
        Lot("urgent_priority", D(10), 1, at(3), at(200)),
    ]
    run = burn_down(lots, [Consumption(at(4), D(25))], until=at(5))
    got = states(run)
    assert got["urgent_priority"].consumed == 10
    assert got["expires_soon"].consumed == 10
    assert got["old_no_expiry"].consumed == 5
    assert got["young_no_expiry"].consumed == 0
    assert run.balance == D(15)


def test_expired_remainder_leaves_the_balance_at_expiry() -> None:
    lots = [Lot("promo", D(50), 10, at(0), at(10)), Lot("topup", D(30), 10, at(0))]
    used = [Consumption(at(1), D(20)), Consumption(at(11), D(5))]
    before = burn_down(lots, used, until=at(9))
    assert before.balance == D(60) and before.expired == 0
    after = burn_down(lots, used, until=at(12))
    got = states(after)
    assert got["promo"].expired == D(30) and got["promo"].is_expired
    assert got["topup"].consumed == D(5)
    assert after.expired == D(30) and after.balance == D(25)


def test_at_one_instant_expiry_then_new_grant_then_consumption() -> None:
    boundary = at(24)
    lots = [Lot("october", D(10), 10, at(0), boundary), Lot("november", D(10), 10, boundary)]
    run = burn_down(lots, [Consumption(boundary, D(4))], until=boundary)
    got = states(run)
    assert got["october"].expired == 10 and got["october"].consumed == 0
    assert got["november"].consumed == 4
    exclusive = burn_down(lots, [Consumption(boundary, D(4))], until=boundary, inclusive=False)
    assert exclusive.balance == 10 and exclusive.expired == 0 and exclusive.consumed == 0


def test_overage_makes_the_balance_negative_and_the_next_grant_pays_it_first() -> None:
    lots = [Lot("small", D(5), 10, at(0)), Lot("topup", D(100), 10, at(5))]
    used = [Consumption(at(1), D(12))]
    short = burn_down(lots, used, until=at(2))
    assert short.balance == D(-7) and short.overage == D(7)
    paid = burn_down(lots, used, until=at(6))
    assert paid.overage == 0 and states(paid)["topup"].consumed == D(7)
    assert paid.balance == D(93)


def test_credits_given_back_settle_overage_then_stay_available() -> None:
    lots = [Lot("g", D(5), 10, at(0), at(10))]
    used = [Consumption(at(1), D(8)), Consumption(at(2), D(-10))]
    run = burn_down(lots, used, until=at(20))
    assert run.overage == 0 and run.returned == D(7)
    assert run.expired == 0  # the grant was used up before it expired
    assert run.balance == D(7)


def test_grants_not_yet_effective_are_not_counted() -> None:
    run = burn_down([Lot("later", D(5), 10, at(10))], [Consumption(at(1), D(1))], until=at(2))
    assert run.lots == () and run.granted == 0 and run.balance == D(-1)


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(LedgerError, match="expires before"):
        burn_down([Lot("g", D(1), 1, at(5), at(5))], [], until=at(6))
    with pytest.raises(LedgerError, match="timezone"):
        burn_down([], [], until=datetime(2026, 1, 1))
    with pytest.raises(LedgerError, match="twice"):
        burn_down([Lot("g", D(1), 1, at(0)), Lot("g", D(1), 1, at(1))], [], until=at(2))


def test_no_precision_is_lost_in_long_sums() -> None:
    tiny = D("0.000000000001")
    lots = [Lot("big", D("99999999999999.999999999999"), 10, at(0))]
    used = [Consumption(at(1 + i / 1000), tiny) for i in range(1000)]
    run = burn_down(lots, used, until=at(3))
    assert run.balance == D("99999999999999.999999999999") - 1000 * tiny


amounts = st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False)
hours = st.integers(min_value=0, max_value=200)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[Lot], list[Consumption]]:
    lots = []
    for index in range(draw(st.integers(0, 5))):
        start = draw(hours)
        life = draw(st.one_of(st.none(), st.integers(1, 120)))
        lots.append(
            Lot(
                f"g{index}",
                draw(amounts),
                draw(st.integers(0, 3)),
                at(start),
                at(start + life) if life is not None else None,
            )
        )
    used = [Consumption(at(draw(hours)), draw(amounts)) for _ in range(draw(st.integers(0, 25)))]
    return lots, used


@settings(max_examples=300, deadline=None)
@given(ledgers(), hours)
def test_balance_is_granted_minus_consumed_minus_expired_and_remaining(
    ledger: tuple[list[Lot], list[Consumption]], cut: int
) -> None:
    lots, used = ledger
    run = burn_down(lots, used, until=at(cut))
    remaining = sum((s.remaining for s in run.lots), D(0))
    assert run.balance == run.granted - run.consumed - run.expired
    assert run.balance == remaining + run.returned - run.overage
    for state in run.lots:
        assert state.consumed + state.expired + state.remaining == state.lot.amount
        assert min(state.consumed, state.expired, state.remaining) >= 0
        assert state.is_expired == (
            state.lot.expires_at is not None and state.lot.expires_at <= at(cut)
        )
    assert sum((s.consumed for s in run.lots), D(0)) + run.overage == run.consumed


@settings(max_examples=300, deadline=None)
@given(ledgers(), hours)
def test_paying_a_span_at_once_burns_like_paying_each_event(
    ledger: tuple[list[Lot], list[Consumption]], cut: int
) -> None:
    """What balance.py relies on: summing consumption between grant boundaries is exact."""
    lots, used = ledger
    bounds = sorted({t for lot in lots for t in (lot.effective_at, lot.expires_at) if t})
    spans: dict[int, list[Consumption]] = {}
    for event in (e for e in used if e.at <= at(cut)):  # the query filters before summing
        spans.setdefault(sum(1 for b in bounds if b <= event.at), []).append(event)
    summed = [
        Consumption(min(e.at for e in events), sum((e.credits for e in events), D(0)))
        for events in spans.values()
    ]
    each = burn_down(lots, used, until=at(cut))
    at_once = burn_down(lots, summed, until=at(cut))
    assert each == at_once
