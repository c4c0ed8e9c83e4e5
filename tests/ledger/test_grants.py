"""Grants are credited once per idempotency key, audited, and refused when malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterhouse.ledger.balance import account_balance
from meterhouse.ledger.errors import LedgerNotFoundError
from meterhouse.ledger.grants import GrantError, create_grant, list_grants
from meterhouse.store.base import Store
from tests.ledger.helpers import Usage, make_account, write_usage

T0 = datetime(2026, 10, 5, tzinfo=UTC)


def test_a_retried_top_up_credits_once_and_is_audited_once(migrated_store: Store) -> None:
    store = migrated_store
    make_account(store, "acme")
    first = create_grant(
        store,
        account_id="acme",
        kind="top_up",
        amount=Decimal(500),
        effective_at=T0,
        idempotency_key="pay_1",
        actor="test",
    )
    again = create_grant(
        store,
        account_id="acme",
        kind="top_up",
        amount=Decimal(900),  # a retry with other fields changes nothing either
        effective_at=T0,
        idempotency_key="pay_1",
        actor="test",
    )
    assert first.created and not again.created
    assert again.grant["grant_id"] == first.grant["grant_id"] and again.grant["amount"] == 500
    assert len(list_grants(store, "acme")) == 1
    assert account_balance(store, "acme", T0 + timedelta(days=1)).balance == Decimal(500)
    audits = store.query(
        "SELECT count() FROM audit_log WHERE action = 'grant.create' AND account_id = 'acme'"
    ).scalar()
    assert audits == 1


def test_the_same_key_in_another_account_is_another_grant(migrated_store: Store) -> None:
    store = migrated_store
    for account in ("a1", "a2"):
        make_account(store, account)
        create_grant(
            store,
            account_id=account,
            kind="promotional",
            amount=Decimal(10),
            effective_at=T0,
            idempotency_key="launch",
            actor="test",
        )
    assert len(list_grants(store, "a1")) == len(list_grants(store, "a2")) == 1


MALFORMED = [
    ({"kind": "gift"}, "unknown grant kind"),
    ({"amount": Decimal(0)}, "positive"),
    ({"amount": Decimal("NaN")}, "finite"),
    ({"idempotency_key": ""}, "idempotency key"),
    ({"priority": 300}, "priority"),
    ({"expires_at": T0}, "expire after"),
]


def test_malformed_grants_are_refused_with_the_reason(migrated_store: Store) -> None:
    for changes, message in MALFORMED:
        fields: dict[str, object] = {
            "account_id": "acme",
            "kind": "top_up",
            "amount": Decimal(1),
            "effective_at": T0,
            "idempotency_key": "k",
            "actor": "test",
            **changes,
        }
        with pytest.raises(GrantError, match=message):
            create_grant(migrated_store, **fields)  # type: ignore[arg-type]
    assert list_grants(migrated_store, "acme") == []


def test_naive_times_are_utc_like_every_stored_time(migrated_store: Store) -> None:
    store = migrated_store
    make_account(store, "acme")
    outcome = create_grant(
        store,
        account_id="acme",
        kind="promotional",
        amount=Decimal(5),
        effective_at=datetime(2026, 10, 1),
        expires_at=datetime(2026, 10, 2, tzinfo=UTC),
        idempotency_key="naive",
        actor="test",
    )
    assert outcome.grant["effective_at"] == datetime(2026, 10, 1, tzinfo=UTC)


def test_balance_of_an_unknown_account_names_it(migrated_store: Store) -> None:
    with pytest.raises(LedgerNotFoundError, match="no account ghost"):
        account_balance(migrated_store, "ghost")


def test_balance_parts_per_grant_follow_the_burn_down(migrated_store: Store) -> None:
    store = migrated_store
    make_account(store, "acme", "Europe/Paris")
    grants = {
        "allowance": ("plan_allowance", Decimal(100), T0, T0 + timedelta(days=10), 10),
        "promo": ("promotional", Decimal(40), T0, T0 + timedelta(days=3), 10),
        "topup": ("top_up", Decimal(60), T0, None, 10),
    }
    ids = {}
    for key, (kind, amount, effective, expires, priority) in grants.items():
        ids[key] = create_grant(
            store,
            account_id="acme",
            kind=kind,
            amount=amount,
            effective_at=effective,
            expires_at=expires,
            idempotency_key=key,
            priority=priority,
            actor="test",
        ).grant["grant_id"]
    write_usage(
        store,
        "acme",
        [
            Usage(T0 + timedelta(days=1), (("input", Decimal(1000), Decimal("0.03")),)),  # 30
            Usage(T0 + timedelta(days=5), (("output", Decimal(100), Decimal("0.9")),)),  # 90
        ],
    )
    result = account_balance(store, "acme", T0 + timedelta(days=20))
    parts = {g.grant_id: g for g in result.grants}
    promo, allowance, topup = parts[ids["promo"]], parts[ids["allowance"]], parts[ids["topup"]]
    # Day 1: 30 from the promotion (expires first). Day 3: its 10 left expire.
    assert (promo.consumed, promo.expired, promo.status) == (30, 10, "expired")
    # Day 5: 90 from the allowance; day 10: its 10 left expire.
    assert (allowance.consumed, allowance.expired, allowance.status) == (90, 10, "expired")
    assert (topup.remaining, topup.status) == (60, "active")
    assert (result.granted, result.consumed, result.expired, result.balance) == (200, 120, 20, 60)
