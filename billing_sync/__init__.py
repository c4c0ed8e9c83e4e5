"""Billing sync: Stripe mirrored into ClickHouse, plans reconciled, credits granted.

Stripe is the system of record for payment, meterhouse for usage and credits. This package
keeps them in step and says loudly when they disagree (docs/billing.md):

- ``sync.BillingSync``: incremental passes from Stripe's Events API and full passes over
  every object, into the ``stripe_*`` mirror tables; then ``allowances`` grants each
  subscription period's plan credits once, and ``reconcile`` records disagreements.
- ``webhook.WebhookReceiver``: POST /api/v1/stripe/webhook, verified, applied once.
- ``service.billing_hook``: all of it inside `meterhouse run` (scheduler, route, metrics).
- ``portal``: Stripe customer portal sessions.

The demo's billing and its local Stripe-shaped server live in meterhouse/demo/.
"""

from __future__ import annotations

from billing_sync.client import PINNED_API_VERSION, BillingError, make_client
from billing_sync.reconcile import ISSUE_KINDS, reconcile
from billing_sync.source import StripeSource
from billing_sync.sync import BillingSync, PassReport

__all__ = [
    "ISSUE_KINDS",
    "PINNED_API_VERSION",
    "BillingError",
    "BillingSync",
    "PassReport",
    "StripeSource",
    "make_client",
    "reconcile",
]
