"""Balance of an account at any time: granted - consumed - expired, with its parts.

Consumption is read from ``usage_events`` summed per span between two consecutive grant
boundaries (a grant taking effect or expiring): inside such a span the grants in force do
not change, so paying the span's sum at once burns exactly what paying each event would.
That keeps the query small (one row per span) however many events an account has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterhouse.access.tenants import list_accounts, now_utc
from meterhouse.ledger.amounts import sub
from meterhouse.ledger.burndown import BurnDown, Consumption, burn_down
from meterhouse.ledger.grants import GrantRecord, grants_in_force_by
from meterhouse.ledger.months import account_zone, aware
from meterhouse.store.base import Store

_SPANS = """
SELECT
    account_id,
    arrayCount(b -> b <= event_time,
               arrayElement({bounds:Array(Array(DateTime64(3, 'UTC')))},
                            indexOf({accounts:Array(String)}, account_id))) AS span,
    min(event_time) AS first_at,
    sum(credits) AS credits
FROM usage_events
WHERE account_id IN {accounts:Array(String)}
  AND event_time __OP__ {until:DateTime64(3, 'UTC')}
  AND ingested_at <= {snapshot:DateTime64(3, 'UTC')}
GROUP BY account_id, span
ORDER BY account_id, span
"""


@dataclass(frozen=True)
class GrantBalance:
    grant_id: str
    kind: str
    description: str
    priority: int
    amount: Decimal
    effective_at: datetime
    expires_at: datetime | None
    consumed: Decimal
    expired: Decimal
    remaining: Decimal
    status: str  # active | used_up | expired


@dataclass(frozen=True)
class Balance:
    """An account's credits at ``at``: ``balance = granted - consumed - expired``."""

    account_id: str
    at: datetime
    granted: Decimal
    consumed: Decimal
    expired: Decimal
    overage: Decimal  # consumption no grant paid for (the balance is then negative)
    grants: tuple[GrantBalance, ...]

    @property
    def balance(self) -> Decimal:
        return sub(sub(self.granted, self.consumed), self.expired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "at": self.at,
            "balance": self.balance,
            "granted": self.granted,
            "consumed": self.consumed,
            "expired": self.expired,
            "overage": self.overage,
            "grants": [vars(grant) for grant in self.grants],
        }


def consumption_spans(
    store: Store,
    boundaries: dict[str, list[datetime]],
    until: datetime,
    *,
    inclusive: bool,
    snapshot: datetime,
) -> dict[str, list[Consumption]]:
    """Each account's consumption summed per span between its boundaries (sorted, UTC)."""
    accounts = list(boundaries)
    spans: dict[str, list[Consumption]] = {account: [] for account in accounts}
    if not accounts:
        return spans
    result = store.query(
        _SPANS.replace("__OP__", "<=" if inclusive else "<"),
        {
            "accounts": accounts,
            "bounds": [boundaries[account] for account in accounts],
            "until": until,
            "snapshot": snapshot,
        },
    )
    for account, _, first_at, credits in result.rows:
        spans[account].append(Consumption(aware(first_at), credits))
    return spans


def grant_boundaries(
    grants: Sequence[GrantRecord], extra: Sequence[datetime] = ()
) -> list[datetime]:
    """Instants at which the set of grants in force changes (plus any asked for)."""
    points = set(extra)
    for grant in grants:
        points.add(grant.lot.effective_at)
        if grant.lot.expires_at is not None:
            points.add(grant.lot.expires_at)
    return sorted(points)


def store_snapshot(store: Store) -> datetime:
    """The store's clock: rows ingested after it are left out of one computation.

    A statement runs several queries; bounding them all by ``ingested_at`` makes them see
    the same events even while new ones arrive, so its totals reconcile.
    """
    value = store.query("SELECT now64(3, 'UTC')").scalar()
    return aware(value) if isinstance(value, datetime) else now_utc()


def to_balance(
    account_id: str, at: datetime, grants: Sequence[GrantRecord], run: BurnDown
) -> Balance:
    records = {grant.lot.grant_id: grant for grant in grants}
    parts: list[GrantBalance] = []
    for state in run.lots:
        record = records[state.lot.grant_id]
        if state.is_expired:
            status = "expired"
        elif state.remaining == 0:
            status = "used_up"
        else:
            status = "active"
        parts.append(
            GrantBalance(
                grant_id=state.lot.grant_id,
                kind=record.kind,
                description=record.description,
                priority=state.lot.priority,
                amount=state.lot.amount,
                effective_at=state.lot.effective_at,
                expires_at=state.lot.expires_at,
                consumed=state.consumed,
                expired=state.expired,
                remaining=state.remaining,
                status=status,
            )
        )
    return Balance(
        account_id=account_id,
        at=at,
        granted=run.granted,
        consumed=run.consumed,
        expired=run.expired,
        overage=run.overage,
        grants=tuple(parts),
    )


def balances(
    store: Store,
    account_ids: Sequence[str],
    at: datetime,
    *,
    inclusive: bool = True,
    snapshot: datetime | None = None,
) -> dict[str, Balance]:
    """Balances of several accounts at ``at`` (events at ``at`` count unless not inclusive)."""
    at = aware(at)
    snapshot = snapshot or store_snapshot(store)
    grants = grants_in_force_by(store, account_ids, at)
    bounds = {account: grant_boundaries(grants[account]) for account in account_ids}
    spans = consumption_spans(store, bounds, at, inclusive=inclusive, snapshot=snapshot)
    out: dict[str, Balance] = {}
    for account in account_ids:
        lots = [grant.lot for grant in grants[account]]
        run = burn_down(lots, spans[account], until=at, inclusive=inclusive)
        out[account] = to_balance(account, at, grants[account], run)
    return out


def account_balance(store: Store, account_id: str, at: datetime | None = None) -> Balance:
    """The balance of one account at ``at`` (default: now), everything at ``at`` included."""
    account_zone(store, account_id)  # a clear error for an unknown account
    when = aware(at) if at is not None else now_utc()
    return balances(store, [account_id], when)[account_id]


def all_balances(store: Store, at: datetime | None = None) -> dict[str, Balance]:
    """The balance of every account (for the low-balance gauge)."""
    accounts = [str(account["account_id"]) for account in list_accounts(store)]
    return balances(store, accounts, aware(at) if at is not None else now_utc())
