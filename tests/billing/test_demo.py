"""The demo's billing: a local Stripe-shaped server, synced and reconciled, in seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from billing_sync.reconcile import list_issues
from meterhouse.demo.billing_seed import billing_source_note, seed_billing
from meterhouse.demo.generator import generate
from meterhouse.demo.ledger_seed import seed_ledger
from meterhouse.demo.runner import store_tenants
from meterhouse.settings import Settings
from meterhouse.store.base import Store


def test_seed_billing_shows_each_demo_account_and_the_planted_issues(migrated_store: Store) -> None:
    data = generate(datetime(2026, 3, 17, 12, tzinfo=UTC), days=2, scale=0.01)
    store_tenants(migrated_store, data, "test:demo")
    seed_ledger(migrated_store, data, "test:demo")  # as `meterhouse demo` does, first
    began = time.monotonic()
    rows = seed_billing(migrated_store, data, "test:demo")
    assert time.monotonic() - began < 20
    by_account = {row["account"]: row for row in rows}
    assert set(by_account) == {"acme", "globex", "initech", "umbrella", "tinyco", "(no account)"}
    assert by_account["(no account)"]["stripe_customer"] == "cus_demo_hooli"
    assert by_account["(no account)"]["open_issues"] == 1
    assert by_account["acme"]["stripe_plan"] == "pro"
    # The ledger demo granted this month's allowances: the sync finds them and adds none.
    assert by_account["acme"]["allowance_granted"] == 10_000
    assert by_account["globex"]["allowance_granted"] == 25_000
    assert by_account["acme"]["period_end"] == "2026-04-01"  # in the account's time zone
    assert by_account["umbrella"]["open_issues"] == 2
    assert by_account["umbrella"]["plan"] == "pro"
    assert by_account["umbrella"]["stripe_plan"] == "starter"
    assert by_account["initech"]["open_invoices_usd"] > 0
    assert by_account["tinyco"]["stripe_customer"] == ""
    issues = {(row["kind"], row["account_id"]) for row in list_issues(migrated_store)}
    assert issues == {
        ("plan_mismatch", "umbrella"),
        ("allowance_mismatch", "umbrella"),  # granted for pro, billed for starter
        ("past_due_invoice", "initech"),
        ("customer_without_account", "hooli"),
    }
    again = seed_billing(migrated_store, data, "test:demo")  # a second demo run
    assert again == rows
    assert "local Stripe-shaped server" in billing_source_note(Settings())
