"""Rate limits, server errors, bad keys, unreachable Stripe, and passes that stop half way."""

from __future__ import annotations

import socket
import time

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from billing_sync.client import (
    BillingError,
    StripeAuthError,
    StripeConfigError,
    StripeUnavailableError,
    make_client,
    new_client,
)
from billing_sync.metrics import BillingMetrics
from billing_sync.portal import create_portal_session
from billing_sync.scheduler import BillingScheduler
from billing_sync.source import StripeSource
from billing_sync.state import EVENTS_CURSOR, FULL_PASS, SyncState, load_state, save_state
from billing_sync.sync import BillingSync, SyncStopped
from meterhouse.access import tenants
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from tests.billing.compare import mirror_differences
from tests.billing.stripe_fake import FAKE_API_KEY, seed_catalog, seed_customers


def paths(fake: LocalStripe, prefix: str) -> int:
    return sum(1 for _, path in fake.server.requests if path.startswith(prefix))


def test_a_rate_limited_page_is_fetched_again_after_retry_after(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    seed_customers(fake, 5, seed_catalog(fake))
    fake.server.fail_next(429, path_prefix="/v1/customers", headers={"Retry-After": "2"})
    began = time.monotonic()
    report = BillingSync(migrated_store, source, clock=fake.now_datetime).run()
    assert report.kind == "full"
    assert time.monotonic() - began >= 2.0  # the library's own backoff would be ~0.5 s
    assert fake.server.requests.count(("GET", "/v1/customers")) == 2
    assert mirror_differences(migrated_store, fake) == []


def test_server_errors_are_retried_by_the_library(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    seed_customers(fake, 5, seed_catalog(fake))
    fake.server.fail_next(500, times=2, path_prefix="/v1/invoices")
    BillingSync(migrated_store, source, clock=fake.now_datetime).run()
    assert fake.server.requests.count(("GET", "/v1/invoices")) == 3
    assert mirror_differences(migrated_store, fake) == []


def test_a_full_pass_that_fails_half_way_resumes_from_its_cursor(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    seed_customers(fake, 250, seed_catalog(fake))
    # The subscriptions list fails: its first request and both retries.
    fake.server.fail_next(503, times=3, path_prefix="/v1/subscriptions")
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    with pytest.raises(StripeUnavailableError, match="HTTP 503"):
        sync.run()
    stopped = load_state(migrated_store, FULL_PASS).cursor
    assert stopped["stage"] == "subscription"
    fake.server.reset_counts()

    report = sync.run()

    assert report.kind == "full" and report.resumed
    assert paths(fake, "/v1/customers") == 250  # balance transactions only, no re-listing
    assert paths(fake, "/v1/products") == paths(fake, "/v1/prices") == 0
    assert mirror_differences(migrated_store, fake) == []


def test_an_incremental_pass_that_fails_half_way_resumes_from_its_cursor(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    subs = seed_customers(fake, 120, prices)
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    sync.run()
    fake.advance(5)
    for sub in subs:  # 120 events: the first chunk of 100 ...
        fake.update_customer(sub["customer"], name="renamed")
    fake.advance(1)
    # ... and, in the second, an invoice whose 12 lines must be fetched: that fetch fails.
    fake.create_invoice(subs[0]["customer"], extra_lines=12, status="paid")
    fake.server.fail_next(500, times=3, path_prefix="/v1/invoices/")
    with pytest.raises(StripeUnavailableError):
        sync.run()
    cursor = load_state(migrated_store, EVENTS_CURSOR).cursor["created"]
    assert cursor == fake.events[99]["created"]  # the first chunk of 100 is stored

    report = sync.run()
    assert report.events_applied == len(fake.events) - 100
    assert mirror_differences(migrated_store, fake) == []


def test_a_refused_key_is_one_clear_error_without_retries(
    migrated_store: Store, fake: LocalStripe
) -> None:
    wrong = StripeSource(new_client("sk_test_wrong", fake.url, 3), fake.url)
    with pytest.raises(StripeAuthError, match="Stripe rejected MH_STRIPE_API_KEY"):
        BillingSync(migrated_store, wrong).run()
    assert fake.server.request_count == 1


def test_a_missing_key_is_named() -> None:
    settings = Settings(stripe_api_key=SecretStr(""))
    with pytest.raises(StripeConfigError, match="MH_STRIPE_API_KEY is not set"):
        make_client(settings)


def test_unreachable_stripe_is_one_clear_error(migrated_store: Store) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    source = StripeSource(new_client(FAKE_API_KEY, closed, 1), closed)
    with pytest.raises(StripeUnavailableError, match=f"cannot reach Stripe at {closed}"):
        BillingSync(migrated_store, source).run()


def test_a_stopped_pass_keeps_its_progress(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    seed_customers(fake, 3, seed_catalog(fake))
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    sync.stop.set()
    with pytest.raises(SyncStopped):
        sync.run()
    assert load_state(migrated_store, FULL_PASS).cursor["stage"] == "product"
    sync.stop.clear()
    assert sync.run().resumed
    assert mirror_differences(migrated_store, fake) == []


def test_the_scheduler_stops_after_one_refused_key(
    migrated_store: Store, fake: LocalStripe
) -> None:
    registry = CollectorRegistry()
    wrong = StripeSource(new_client("sk_test_wrong", fake.url, 3), fake.url)
    scheduler = BillingScheduler(
        BillingSync(migrated_store, wrong),
        BillingMetrics(registry),
        interval_seconds=10,
        full_interval_seconds=60,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while not scheduler.stopped_reason and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.jobs() == []  # both pass jobs are gone ...
        time.sleep(0.5)  # ... so nothing asks Stripe again
    finally:
        scheduler.shutdown()
    assert "MH_STRIPE_API_KEY" in scheduler.stopped_reason
    assert fake.server.request_count == 1
    sample = registry.get_sample_value
    assert sample("meterhouse_billing_sync_enabled") == 0
    assert (
        sample("meterhouse_billing_sync_failures_total", {"pass": "incremental", "reason": "auth"})
        == 1
    )


def test_a_portal_for_an_account_without_a_customer_says_how_to_link_one(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    tenants.create_account(migrated_store, "acme", actor="test", plan="pro")
    with pytest.raises(BillingError, match="accounts update acme --stripe-customer-id"):
        create_portal_session(migrated_store, source, "acme", None)
    with pytest.raises(BillingError, match="no account nobody"):
        create_portal_session(migrated_store, source, "nobody", None)
    assert fake.server.request_count == 0


def test_a_full_pass_whose_resume_point_is_gone_lists_the_stage_again(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    seed_customers(fake, 3, seed_catalog(fake))
    stopped = SyncState(
        FULL_PASS, {"stage": "customer", "after": "cus_deleted_meanwhile", "snapshot": fake.now()}
    )
    save_state(migrated_store, stopped)
    report = BillingSync(migrated_store, source, clock=fake.now_datetime).run()
    assert report.resumed
    assert report.objects["customer"] == 3
    assert fake.server.requests.count(("GET", "/v1/customers")) == 2  # refused, then again
