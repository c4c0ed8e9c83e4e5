"""Billing tests: a migrated store per test and a fake Stripe per test, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing_sync.client import new_client
from billing_sync.source import StripeSource
from meterhouse.demo.local_stripe import LocalStripe
from tests.billing.stripe_fake import FAKE_API_KEY, make_fake


@pytest.fixture
def fake() -> Iterator[LocalStripe]:
    """A started fake Stripe (fixture-built, schema-checked objects)."""
    stripe = make_fake()
    stripe.start()
    server = stripe.server
    try:
        yield stripe
    finally:
        stripe.stop()
    # Anything the fake could not serve (an object that failed Stripe's schema) fails the test.
    assert server.errors == []


@pytest.fixture
def source(fake: LocalStripe) -> StripeSource:
    """The official library, pointed at the fake, retrying twice."""
    return StripeSource(new_client(FAKE_API_KEY, fake.url, 2), fake.url)
