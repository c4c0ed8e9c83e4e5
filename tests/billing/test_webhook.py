"""Webhooks: valid, tampered, replayed and out-of-order deliveries, signed as Stripe signs."""

from __future__ import annotations

import json
import time

from billing_sync.source import StripeSource
from billing_sync.sync import BillingSync
from billing_sync.webhook import WebhookReceiver
from meterhouse.demo.local_stripe import LocalStripe, sign_payload
from meterhouse.store.base import Store
from tests.billing.stripe_fake import WEBHOOK_SECRET, seed_catalog


def receiver(store: Store, source: StripeSource | None = None) -> WebhookReceiver:
    return WebhookReceiver(store, secret=WEBHOOK_SECRET, tolerance_seconds=300, source=source)


def customer_row(store: Store, customer_id: str) -> dict:
    found = next(
        store.query(
            "SELECT email, deleted, version FROM stripe_customers FINAL "
            "WHERE customer_id = {c:String}",
            {"c": customer_id},
        ).dicts(),
        None,
    )
    assert found is not None
    return found


def applied_count(store: Store, event_id: str) -> int:
    return int(
        store.query(
            "SELECT count() FROM stripe_webhook_events WHERE event_id = {e:String}",
            {"e": event_id},
        ).scalar()
    )


def test_a_valid_delivery_is_applied_once_and_a_replay_is_not(
    migrated_store: Store, fake: LocalStripe
) -> None:
    customer = fake.create_customer(email="first@acme.example", account="acme")
    event = fake.events[-1]
    hook = receiver(migrated_store)
    payload, headers = fake.webhook_delivery(event["id"], WEBHOOK_SECRET)

    outcome = hook.receive(payload, headers["Stripe-Signature"])
    assert (outcome.status, outcome.outcome) == (200, "applied")
    assert customer_row(migrated_store, customer["id"])["email"] == "first@acme.example"

    again = hook.receive(payload, headers["Stripe-Signature"])  # Stripe retries a delivery
    assert (again.status, again.outcome) == (200, "duplicate")
    assert applied_count(migrated_store, event["id"]) == 1

    # A delivery captured and replayed later: its signed timestamp is past the tolerance.
    fake.update_customer(customer["id"], email="replayed@acme.example")
    replayed = fake.events[-1]["id"]
    captured = int(time.time()) - 301
    payload, headers = fake.webhook_delivery(replayed, WEBHOOK_SECRET, timestamp=captured)
    refused = hook.receive(payload, headers["Stripe-Signature"])
    assert (refused.status, refused.outcome) == (400, "bad_signature")
    assert "timestamp outside the tolerance zone" in refused.detail.lower()
    assert applied_count(migrated_store, replayed) == 0
    assert customer_row(migrated_store, customer["id"])["email"] == "first@acme.example"


def test_tampered_or_wrongly_signed_deliveries_are_refused(
    migrated_store: Store, fake: LocalStripe
) -> None:
    customer = fake.create_customer(email="real@acme.example", account="acme")
    event_id = fake.events[-1]["id"]
    hook = receiver(migrated_store)
    payload, headers = fake.webhook_delivery(event_id, WEBHOOK_SECRET)
    tampered = payload.replace(b"real@acme.example", b"evil@acme.example")
    assert tampered != payload

    refused = hook.receive(tampered, headers["Stripe-Signature"])
    assert (refused.status, refused.outcome) == (400, "bad_signature")
    _, wrong = fake.webhook_delivery(event_id, "whsec_someone_else")
    assert hook.receive(payload, wrong["Stripe-Signature"]).status == 400
    assert hook.receive(payload, None).status == 400
    assert hook.receive(b"not json", headers["Stripe-Signature"]).status == 400
    rows = migrated_store.query(
        "SELECT count() FROM stripe_customers WHERE customer_id = {c:String}",
        {"c": customer["id"]},
    ).scalar()
    assert rows == 0
    assert applied_count(migrated_store, event_id) == 0

    unconfigured = WebhookReceiver(migrated_store, secret="", tolerance_seconds=300, source=None)
    outcome = unconfigured.receive(payload, headers["Stripe-Signature"])
    assert (outcome.status, outcome.outcome) == (503, "not_configured")


def test_out_of_order_deliveries_leave_the_newest_state(
    migrated_store: Store, fake: LocalStripe
) -> None:
    customer = fake.create_customer(email="v1@acme.example", account="acme")
    fake.advance(10)
    fake.update_customer(customer["id"], email="v2@acme.example")
    fake.advance(10)
    fake.update_customer(customer["id"], email="v3@acme.example")
    created, second, third = fake.events[-3:]
    hook = receiver(migrated_store)

    for event in (third, created, second):  # newest first, as a retry storm might
        payload, headers = fake.webhook_delivery(event["id"], WEBHOOK_SECRET)
        assert hook.receive(payload, headers["Stripe-Signature"]).outcome == "applied"

    row = customer_row(migrated_store, customer["id"])
    assert row["email"] == "v3@acme.example"
    assert row["version"] == third["created"] * 1000

    # A deletion, then an older update arriving late: the customer stays deleted.
    fake.advance(10)
    fake.update_customer(customer["id"], name="Acme")
    fake.advance(10)
    fake.delete_customer(customer["id"])
    update, deletion = fake.events[-2:]
    for event in (deletion, update):
        payload, headers = fake.webhook_delivery(event["id"], WEBHOOK_SECRET)
        assert hook.receive(payload, headers["Stripe-Signature"]).outcome == "applied"
    assert customer_row(migrated_store, customer["id"])["deleted"] == 1


def test_events_applied_by_webhook_are_not_applied_again_by_the_sync(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    sync.run()  # first pass: full
    fake.advance(5)
    customer = fake.create_customer(email="a@acme.example", account="acme")
    event = fake.events[-1]
    payload, headers = fake.webhook_delivery(event["id"], WEBHOOK_SECRET)
    assert (
        receiver(migrated_store, source).receive(payload, headers["Stripe-Signature"]).status == 200
    )

    report = sync.run()
    assert report.kind == "incremental"
    assert report.events_listed == 1
    assert report.events_applied == 0
    assert applied_count(migrated_store, event["id"]) == 1
    assert customer_row(migrated_store, customer["id"])["email"] == "a@acme.example"


def test_an_event_of_an_older_api_version_is_read_again_at_the_pinned_one(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    customer = fake.create_customer(email="a@acme.example", account="acme")
    prices = seed_catalog(fake)
    sub = fake.create_subscription(customer["id"], [(prices["pro"], 1)])
    invoice = fake.create_invoice(customer["id"], subscription_id=sub["id"], status="paid")
    # As an endpoint on API version 2023-08-16 would get it: subscription at the top level.
    legacy = {key: value for key, value in invoice.items() if key != "parent"}
    legacy["subscription"] = sub["id"]
    event = {
        "id": "evt_legacy_1",
        "object": "event",
        "api_version": "2023-08-16",
        "created": fake.now(),
        "type": "invoice.paid",
        "data": {"object": legacy},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    payload = json.dumps(event).encode()
    signature = sign_payload(payload, WEBHOOK_SECRET, int(time.time()))
    fake.server.reset_counts()

    assert receiver(migrated_store, source).receive(payload, signature).outcome == "applied"

    assert fake.server.requests == [("GET", f"/v1/invoices/{invoice['id']}")]
    raw, subscription_id = migrated_store.query(
        "SELECT raw, subscription_id FROM stripe_invoices FINAL WHERE invoice_id = {i:String}",
        {"i": invoice["id"]},
    ).rows[0]
    assert subscription_id == sub["id"]
    assert json.loads(raw) == invoice  # the dahlia object, not the legacy one
