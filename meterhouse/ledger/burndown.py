"""Which grant pays for which credits: the burn-down, as a pure function.

Consumption is paid from the grants in force at its time, in this order (OpenMeter's):

1. lower ``priority`` first;
2. then the grant that expires first (a grant without expiry comes last);
3. then the oldest (earliest ``effective_at``; the grant id breaks a last tie).

When no grant in force has credits left, the rest becomes *overage*: the balance goes
negative, and the next grant to take effect pays the overage first. When a grant expires,
what is left of it leaves the balance as *expired*. At one instant, expiries happen first,
then grants take effect, then consumption is paid: a grant that expires at 00:00 pays
nothing stamped 00:00, and a grant effective at 00:00 pays for it.

Negative consumption (credits given back) first reduces overage; the rest is kept as
*returned* credits that never expire and burn after every grant.

So for every cut-off time: ``balance = granted - consumed - expired``
``= sum(remaining of each grant) + returned - overage``. Everything is Decimal, summed in
:data:`~meterhouse.ledger.amounts.LEDGER_CONTEXT`, so nothing is ever rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from meterhouse.ledger.amounts import ZERO, add, exact_sum, sub
from meterhouse.ledger.errors import LedgerError

_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Lot:
    """A grant as the burn-down sees it."""

    grant_id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    expires_at: datetime | None = None

    def burn_key(self) -> tuple[int, datetime, datetime, str]:
        return (self.priority, self.expires_at or _NEVER, self.effective_at, self.grant_id)


@dataclass(frozen=True)
class Consumption:
    """Credits used at one instant (or the sum of a span in which no grant changes)."""

    at: datetime
    credits: Decimal


@dataclass(frozen=True)
class LotState:
    lot: Lot
    consumed: Decimal
    expired: Decimal
    remaining: Decimal
    is_expired: bool


@dataclass(frozen=True)
class BurnDown:
    """The ledger at a cut-off: every grant in force by then, and the totals."""

    lots: tuple[LotState, ...]
    granted: Decimal
    consumed: Decimal
    expired: Decimal
    overage: Decimal
    returned: Decimal

    @property
    def balance(self) -> Decimal:
        return sub(sub(self.granted, self.consumed), self.expired)


@dataclass
class _Open:
    lot: Lot
    remaining: Decimal
    consumed: Decimal = ZERO
    expired: Decimal = ZERO
    is_expired: bool = False


@dataclass
class _Ledger:
    open_lots: list[_Open] = field(default_factory=list)  # in force now, in burn order
    overage: Decimal = ZERO
    returned: Decimal = ZERO

    def pay(self, credits: Decimal) -> None:
        """Take ``credits`` from the grants in force, in burn order; the rest is overage."""
        left = credits
        for state in self.open_lots:
            if left <= 0:
                break
            take = min(left, state.remaining)
            if take > 0:
                state.remaining = sub(state.remaining, take)
                state.consumed = add(state.consumed, take)
                left = sub(left, take)
        if left > 0:
            take = min(left, self.returned)
            self.returned = sub(self.returned, take)
            left = sub(left, take)
        self.overage = add(self.overage, left)

    def give_back(self, credits: Decimal) -> None:
        settle = min(credits, self.overage)
        self.overage = sub(self.overage, settle)
        self.returned = add(self.returned, sub(credits, settle))

    def open(self, state: _Open) -> None:
        self.open_lots.append(state)
        self.open_lots.sort(key=lambda s: s.lot.burn_key())
        if self.overage > 0:
            debt, self.overage = self.overage, ZERO
            self.pay(debt)

    def expire(self, state: _Open) -> None:
        state.expired, state.remaining, state.is_expired = state.remaining, ZERO, True
        self.open_lots.remove(state)


def _check(lots: Sequence[Lot], cutoff: datetime) -> None:
    seen: set[str] = set()
    if cutoff.tzinfo is None:
        raise LedgerError("the burn-down cut-off must be a timezone-aware time")
    for lot in lots:
        if lot.grant_id in seen:
            raise LedgerError(f"grant {lot.grant_id} appears twice in one burn-down")
        seen.add(lot.grant_id)
        if lot.amount < 0:
            raise LedgerError(f"grant {lot.grant_id} has a negative amount {lot.amount}")
        if lot.effective_at.tzinfo is None or (lot.expires_at and lot.expires_at.tzinfo is None):
            raise LedgerError(f"grant {lot.grant_id} has a time without a time zone")
        if lot.expires_at is not None and lot.expires_at <= lot.effective_at:
            raise LedgerError(f"grant {lot.grant_id} expires before it takes effect")


def burn_down(
    lots: Sequence[Lot],
    consumption: Iterable[Consumption],
    *,
    until: datetime,
    inclusive: bool = True,
) -> BurnDown:
    """The ledger after everything at or before ``until`` (before it, if not inclusive)."""
    _check(lots, until)

    def in_range(at: datetime) -> bool:
        return at <= until if inclusive else at < until

    # (time, phase, order, payload): phase 0 expiry, 1 takes effect, 2 consumption.
    timeline: list[tuple[datetime, int, int, object]] = []
    states = {lot.grant_id: _Open(lot, lot.amount) for lot in lots if in_range(lot.effective_at)}
    for index, state in enumerate(states.values()):
        timeline.append((state.lot.effective_at, 1, index, state))
        expires = state.lot.expires_at
        if expires is not None and in_range(expires):
            timeline.append((expires, 0, index, state))
    for index, used in enumerate(consumption):
        if used.at.tzinfo is None:
            raise LedgerError("consumption times must be timezone-aware")
        if in_range(used.at):
            timeline.append((used.at, 2, index, used))
    timeline.sort(key=lambda entry: (entry[0], entry[1], entry[2]))

    ledger = _Ledger()
    for _, phase, _, payload in timeline:
        if phase == 0:
            assert isinstance(payload, _Open)
            ledger.expire(payload)
        elif phase == 1:
            assert isinstance(payload, _Open)
            ledger.open(payload)
        else:
            assert isinstance(payload, Consumption)
            if payload.credits >= 0:
                ledger.pay(payload.credits)
            else:
                ledger.give_back(-payload.credits)

    consumed = exact_sum(
        entry[3].credits for entry in timeline if isinstance(entry[3], Consumption)
    )
    ordered = sorted(states.values(), key=lambda s: (s.lot.effective_at, s.lot.grant_id))
    return BurnDown(
        lots=tuple(
            LotState(s.lot, s.consumed, s.expired, s.remaining, s.is_expired) for s in ordered
        ),
        granted=exact_sum(s.lot.amount for s in ordered),
        consumed=consumed,
        expired=exact_sum(s.expired for s in ordered),
        overage=ledger.overage,
        returned=ledger.returned,
    )
