"""Full and incremental passes against the fake Stripe: the mirror equals Stripe's state."""

from __future__ import annotations

import time

import pytest

from billing_sync.source import StripeSource
from billing_sync.state import EVENTS_CURSOR, FULL_PASS, load_state
from billing_sync.sync import BillingSync
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.store.base import Store
from tests.billing.compare import mirror_differences
from tests.billing.stripe_fake import seed_catalog, seed_customers

CUSTOMERS = 2_000


def twenty_changes(fake: LocalStripe, subs: list[dict], prices: dict[str, str]) -> int:
    """Twenty changes of every kind the mirror follows; returns how many were made."""
    customers = [sub["customer"] for sub in subs]
    changes = 0
    for n in range(3):  # 3
        fake.update_customer(customers[n], email=f"new{n}@example.com")
        changes += 1
    for n in range(4, 7):  # 3: quantity, then a plan change
        fake.update_subscription(subs[n]["id"], quantity=5)
        changes += 1
    fake.update_subscription(subs[7]["id"], price_id=prices["pro"])
    fake.update_subscription(subs[8]["id"], price_id=prices["starter"])
    changes += 2
    fake.cancel_subscription(subs[9]["id"])  # 1
    fake.delete_customer(customers[10])  # 1 (cancels its subscription too)
    new = fake.create_customer(email="late@example.com", account="acct-late")  # 2
    fake.create_subscription(new["id"], [(prices["starter"], 2)])
    changes += 4
    invoice = fake.create_invoice(customers[11], subscription_id=subs[11]["id"], status="open")
    fake.fail_invoice_payment(invoice["id"])  # 2
    fake.add_balance_transaction(customers[12], -2_500, description="goodwill")  # 1
    fake.renew_subscription(subs[13]["id"])  # 1
    draft = fake.create_invoice(customers[14], extra_lines=12, status="draft")  # 2
    fake.delete_invoice(draft["id"])
    fake.create_invoice(customers[15], extra_lines=12, status="paid")  # 1, 12 lines
    product = fake.objects["product"][fake.objects["price"][prices["pro"]]["product"]]
    fake.update_product(
        product["id"], metadata={"meterhouse_plan": "pro", "meterhouse_credits": "1"}
    )
    changes += 8
    return changes


@pytest.mark.slow  # 2,000 customers: at scale
def test_full_then_incremental_mirror_stripe_exactly(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    subs = seed_customers(fake, CUSTOMERS, prices)
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)

    began = time.monotonic()
    full = sync.run()
    full_seconds = time.monotonic() - began
    full_requests = fake.server.request_count
    assert full.kind == "full"
    assert full.objects["customer"] == CUSTOMERS
    assert mirror_differences(migrated_store, fake) == []
    # Products, prices, customers, subscriptions, invoices in pages of 100, plus one
    # balance-transaction list per customer: no request per invoice or subscription.
    assert full_requests <= 2 + 20 + 21 + 40 + CUSTOMERS + 5

    fake.advance(60)
    changes = twenty_changes(fake, subs, prices)
    assert changes == 20
    fake.server.reset_counts()
    began = time.monotonic()
    incremental = sync.run()
    incremental_seconds = time.monotonic() - began
    assert incremental.kind == "incremental"
    assert incremental.events_applied >= changes
    assert mirror_differences(migrated_store, fake) == []
    # One page of events, the changed customer's balance transactions, the lines of the
    # two invoices with more than 10: requests follow the changes, not the customers.
    assert fake.server.request_count <= 5, fake.server.requests
    print(
        f"\nfull pass: {CUSTOMERS} customers, {full_requests} requests, {full_seconds:.1f}s; "
        f"incremental: {incremental.events_applied} events, {fake.server.request_count} "
        f"requests, {incremental_seconds:.2f}s"
    )


def test_a_second_incremental_pass_with_no_change_asks_for_one_page(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    seed_customers(fake, 30, prices)
    BillingSync(migrated_store, source, clock=fake.now_datetime).run()
    fake.server.reset_counts()
    # A new BillingSync (a restart) continues from the stored cursor.
    report = BillingSync(migrated_store, source, clock=fake.now_datetime).run()
    assert report.kind == "incremental"
    assert report.events_applied == 0
    assert fake.server.requests == [("GET", "/v1/events")]
    assert load_state(migrated_store, EVENTS_CURSOR).last_success_at is not None
    assert load_state(migrated_store, FULL_PASS).cursor["stage"] == "done"
