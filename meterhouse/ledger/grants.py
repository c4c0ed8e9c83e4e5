"""Credit grants: plan allowances, top-ups, promotional credits, adjustments.

A grant is identified by its idempotency key (per account): creating a grant with a key
that exists returns the stored grant and credits nothing more, so a retried top-up or a
re-run of the billing sync never credits twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from meterhouse.access.tenants import audited_write, now_utc
from meterhouse.errors import MeterhouseError
from meterhouse.ledger.burndown import Lot
from meterhouse.ledger.months import aware
from meterhouse.store.base import Store

GRANT_KINDS: Final = ("plan_allowance", "top_up", "promotional", "adjustment")
KIND_LABELS: Final = {
    "plan_allowance": "Plan allowance",
    "top_up": "Top-up",
    "promotional": "Promotional credit",
    "adjustment": "Adjustment",
}
_MAX_AMOUNT: Final = Decimal("1e15")


class GrantError(MeterhouseError):
    """A grant's fields are not acceptable."""


@dataclass(frozen=True)
class GrantOutcome:
    grant: dict[str, Any]
    created: bool


def grant_id_for(account_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{account_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"grt_{digest[:24]}"


def get_grant(store: Store, account_id: str, grant_id: str) -> dict[str, Any] | None:
    result = store.query(
        "SELECT grant_id, account_id, kind, amount, priority, effective_at, expires_at, "
        "idempotency_key, description, source, stripe_ref, created_at, voided "
        "FROM credit_grants FINAL WHERE account_id = {a:String} AND grant_id = {g:String}",
        {"a": account_id, "g": grant_id},
    )
    return next(result.dicts(), None)


def list_grants(store: Store, account_id: str) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT grant_id, kind, amount, priority, effective_at, expires_at, description, source, "
        "idempotency_key, voided FROM credit_grants FINAL WHERE account_id = {a:String} "
        "ORDER BY effective_at, grant_id",
        {"a": account_id},
    )
    return list(result.dicts())


def create_grant(
    store: Store,
    *,
    account_id: str,
    kind: str,
    amount: Decimal,
    effective_at: datetime,
    idempotency_key: str,
    actor: str,
    expires_at: datetime | None = None,
    priority: int = 10,
    description: str = "",
    source: str = "manual",
    stripe_ref: str = "",
) -> GrantOutcome:
    """Store a grant once per (account, idempotency key); audited when created."""
    if kind not in GRANT_KINDS:
        raise GrantError(f"unknown grant kind {kind!r}; kinds: {', '.join(GRANT_KINDS)}")
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise GrantError("grant amount must be a finite Decimal number of credits")
    if amount <= 0 or amount >= _MAX_AMOUNT:
        raise GrantError(f"grant amount must be positive and below {_MAX_AMOUNT}; got {amount}")
    if not idempotency_key:
        raise GrantError("a grant needs an idempotency key, so that a retry cannot credit twice")
    if not 0 <= priority <= 255:
        raise GrantError("priority must be 0-255 (lower burns first)")
    # Naive times are UTC, as the store reads them; comparing them with aware ones would fail.
    effective_at = aware(effective_at)
    expires_at = aware(expires_at) if expires_at is not None else None
    if expires_at is not None and expires_at <= effective_at:
        raise GrantError("a grant must expire after it takes effect")
    grant_id = grant_id_for(account_id, idempotency_key)
    existing = get_grant(store, account_id, grant_id)
    if existing is not None:
        return GrantOutcome(existing, created=False)
    row: dict[str, list[Any]] = {
        "grant_id": [grant_id],
        "account_id": [account_id],
        "kind": [kind],
        "amount": [amount],
        "priority": [priority],
        "effective_at": [effective_at],
        "expires_at": [expires_at],
        "idempotency_key": [idempotency_key],
        "description": [description],
        "source": [source],
        "stripe_ref": [stripe_ref],
        "created_at": [now_utc()],
    }
    stored = audited_write(
        store,
        lambda: store.insert("credit_grants", row),
        lambda: get_grant(store, account_id, grant_id),
        actor=actor,
        action="grant.create",
        target_type="credit_grant",
        target_id=grant_id,
        account_id=account_id,
        before=None,
    )
    return GrantOutcome(stored, created=True)


@dataclass(frozen=True)
class GrantRecord:
    """A stored grant, with what the burn-down needs and what a statement shows."""

    lot: Lot
    account_id: str
    kind: str
    description: str
    source: str

    @property
    def label(self) -> str:
        text = KIND_LABELS.get(self.kind, self.kind)
        return f"{text}: {self.description}" if self.description else text


def grants_in_force_by(
    store: Store, account_ids: Sequence[str], until: datetime
) -> dict[str, list[GrantRecord]]:
    """Every grant of these accounts effective at or before ``until``, voided ones left out."""
    result = store.query(
        "SELECT grant_id, account_id, kind, amount, priority, effective_at, expires_at, "
        "description, source FROM credit_grants FINAL "
        "WHERE account_id IN {a:Array(String)} AND voided = 0 "
        "AND effective_at <= {until:DateTime64(3, 'UTC')} "
        "ORDER BY account_id, effective_at, grant_id",
        {"a": list(account_ids), "until": until},
    )
    found: dict[str, list[GrantRecord]] = {account: [] for account in account_ids}
    for row in result.dicts():
        lot = Lot(
            grant_id=row["grant_id"],
            amount=row["amount"],
            priority=int(row["priority"]),
            effective_at=aware(row["effective_at"]),
            expires_at=aware(row["expires_at"]) if row["expires_at"] is not None else None,
        )
        found[row["account_id"]].append(
            GrantRecord(lot, row["account_id"], row["kind"], row["description"], row["source"])
        )
    return found
