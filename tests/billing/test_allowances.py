"""Plan allowances: granted once per subscription period, again when the period renews."""

from __future__ import annotations

import time
from decimal import Decimal

from prometheus_client import CollectorRegistry

from billing_sync.metrics import BillingMetrics
from billing_sync.scheduler import BillingScheduler
from billing_sync.source import StripeSource
from billing_sync.state import FULL_PASS, load_state
from billing_sync.sync import BillingSync
from billing_sync.webhook import WebhookReceiver
from meterhouse.access import tenants
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.store.base import Store
from tests.billing.stripe_fake import WEBHOOK_SECRET, seed_catalog


def allowance_grants(store: Store) -> list[dict]:
    return list(
        store.query(
            "SELECT account_id, amount, effective_at, expires_at, idempotency_key, stripe_ref, "
            "source FROM credit_grants FINAL WHERE kind = 'plan_allowance' "
            "ORDER BY effective_at"
        ).dicts()
    )


def test_each_period_is_granted_once(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    cus = fake.create_customer(email="pay@acme.example", account="acme")["id"]
    tenants.create_account(migrated_store, "acme", actor="test", plan="pro", stripe_customer_id=cus)
    sub = fake.create_subscription(cus, [(prices["pro"], 2)])
    item = sub["items"]["data"][0]
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)

    assert sync.run().grants_created == 1
    assert sync.run().grants_created == 0  # the same period: nothing more
    assert sync.run(full=True).grants_created == 0
    (grant,) = allowance_grants(migrated_store)
    assert grant["account_id"] == "acme"
    assert grant["amount"] == Decimal("250000.5") * 2
    assert int(grant["effective_at"].timestamp()) == item["current_period_start"]
    assert int(grant["expires_at"].timestamp()) == item["current_period_end"]
    assert grant["idempotency_key"] == f"allowance:{sub['id']}:{item['current_period_start']}"
    assert grant["stripe_ref"] == f"{sub['id']}:{item['current_period_start']}"
    assert grant["source"] == "stripe"

    fake.advance(15 * 86_400)  # mid-period: still nothing to grant
    assert sync.run().grants_created == 0
    fake.advance(item["current_period_end"] - fake.now() + 5)
    fake.renew_subscription(sub["id"])
    report = sync.run()
    assert report.kind == "incremental"
    assert report.grants_created == 1
    grants = allowance_grants(migrated_store)
    assert len(grants) == 2
    assert int(grants[1]["effective_at"].timestamp()) == item["current_period_end"]
    assert report.issues is not None and report.issues.found == []


def test_past_due_and_unlinked_subscriptions_are_not_granted(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    linked = fake.create_customer(email="a@x.example", account="late")["id"]
    tenants.create_account(
        migrated_store, "late", actor="test", plan="pro", stripe_customer_id=linked
    )
    fake.create_subscription(linked, [(prices["pro"], 1)], status="past_due")
    stranger = fake.create_customer(email="b@x.example")["id"]
    fake.create_subscription(stranger, [(prices["starter"], 1)])

    report = BillingSync(migrated_store, source, clock=fake.now_datetime).run()

    assert report.grants_created == 0
    assert allowance_grants(migrated_store) == []
    assert report.issues is not None
    assert {i.kind for i in report.issues.found} == {"customer_without_account"}


def test_a_webhook_for_a_new_subscription_is_granted_shortly_after(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    cus = fake.create_customer(email="pay@acme.example", account="acme")["id"]
    tenants.create_account(migrated_store, "acme", actor="test", plan="pro", stripe_customer_id=cus)
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    scheduler = BillingScheduler(
        sync,
        BillingMetrics(CollectorRegistry()),
        interval_seconds=3600,
        full_interval_seconds=7200,
        after_webhook_seconds=0.2,
    )
    hook = WebhookReceiver(
        migrated_store,
        secret=WEBHOOK_SECRET,
        tolerance_seconds=300,
        source=source,
        on_applied=scheduler.webhook_applied,
    )
    scheduler.start()  # its first pass (full) finds nothing to grant
    try:
        deadline = time.monotonic() + 20
        while load_state(migrated_store, FULL_PASS).last_success_at is None:
            assert time.monotonic() < deadline, "the first pass did not finish"
            time.sleep(0.05)
        fake.create_subscription(cus, [(prices["pro"], 1)])
        payload, headers = fake.webhook_delivery(fake.events[-1]["id"], WEBHOOK_SECRET)
        assert hook.receive(payload, headers["Stripe-Signature"]).outcome == "applied"
        while not allowance_grants(migrated_store):
            assert time.monotonic() < deadline, "the webhook's subscription was not granted"
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    assert allowance_grants(migrated_store)[0]["account_id"] == "acme"
