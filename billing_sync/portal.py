"""Stripe customer portal sessions: where an account's people manage plan and payment."""

from __future__ import annotations

import uuid
from typing import Any

from billing_sync.client import BillingError
from billing_sync.source import StripeSource
from meterhouse.access.tenants import get_account
from meterhouse.store.base import Store


def customer_for_account(store: Store, account_id: str) -> str:
    """The account's Stripe customer: its own link, else the one naming it in metadata."""
    account = get_account(store, account_id)
    if account is None:
        raise BillingError(f"no account {account_id}; `meterhouse accounts list` shows them")
    if account["stripe_customer_id"]:
        return str(account["stripe_customer_id"])
    rows = store.query(
        "SELECT customer_id FROM stripe_customers FINAL "
        "WHERE account_id = {a:String} AND deleted = 0 ORDER BY customer_id",
        {"a": account_id},
    ).rows
    named = [str(row[0]) for row in rows]
    if len(named) == 1:
        return named[0]
    raise BillingError(
        f"account {account_id} has no Stripe customer: link one with `meterhouse accounts "
        f"update {account_id} --stripe-customer-id cus_…`"
        + (f" ({len(named)} customers name it in their metadata)" if named else "")
    )


def create_portal_session(
    store: Store, source: StripeSource, account_id: str, return_url: str | None
) -> dict[str, Any]:
    """A billing portal session for the account's customer (one idempotent Stripe write)."""
    customer = customer_for_account(store, account_id)
    # One key per request, reused by the library's retries of that request.
    key = f"meterhouse-portal-{account_id}-{uuid.uuid4().hex}"
    return source.create_portal_session(customer, return_url, key)
