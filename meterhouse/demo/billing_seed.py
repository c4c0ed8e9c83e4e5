"""Billing for `meterhouse demo`: Stripe state for the demo's accounts, synced and checked.

Without MH_STRIPE_API_KEY the demo starts a local Stripe-shaped server (local_stripe.py)
on 127.0.0.1, seeds it with plans, customers, subscriptions and invoices for the demo's
accounts, links the accounts to their customers, runs one full sync through the official
library, and stops the server. Disagreements are planted so the reconciliation has
something to say: umbrella pays for starter while meterhouse has it on pro (so its
allowance is too big as well), initech's latest invoice failed to charge, and a Stripe
customer (hooli) has no account.

With a key set, nothing is written to Stripe: the demo syncs the configured account as
`meterhouse billing sync` would and shows the same summary.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Final

from billing_sync.client import make_client, new_client
from billing_sync.source import StripeSource
from billing_sync.summary import billing_summary
from billing_sync.sync import BillingSync
from meterhouse.access import tenants
from meterhouse.demo.generator import DemoData
from meterhouse.demo.ledger_seed import PLAN_ALLOWANCES
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.ledger.months import MonthSpan, zone_of
from meterhouse.settings import Settings
from meterhouse.store.base import Store

# Monthly price per plan, in cents. Credits per period are the ledger demo's allowances,
# which `meterhouse demo` grants before this runs: the sync then finds each period granted.
PRICES: Final = {"starter": 4_900, "pro": 49_900, "enterprise": 99_900}
# What Stripe says each demo account pays for; umbrella's plan is the planted mismatch.
STRIPE_PLAN: Final = {
    "acme": "pro",
    "globex": "enterprise",
    "initech": "starter",
    "umbrella": "starter",
}
PAST_DUE: Final = "initech"
STRAY_CUSTOMER: Final = ("cus_demo_hooli", "billing@hooli.example", "hooli")


def billing_source_note(settings: Settings | None) -> str:
    """Where the demo's billing state comes from, for the demo to say."""
    if settings is not None and settings.stripe_api_key.get_secret_value().strip():
        return f"from Stripe at {settings.stripe_api_base} (MH_STRIPE_API_KEY is set)"
    return "from a local Stripe-shaped server the demo started (MH_STRIPE_API_KEY is not set)"


def seed_local_stripe(stripe: LocalStripe, data: DemoData) -> dict[str, str]:
    """Plans, customers, subscriptions and invoices for the demo's tenants.

    Each subscription bills calendar months of its account's time zone (as the ledger demo
    does): last month paid, this month paid, except initech's, whose charge failed.
    Returns account id -> customer id; ids are fixed, so a second demo run matches the first.
    """
    prices: dict[str, str] = {}
    for plan, cents in PRICES.items():
        product = stripe.create_product(
            plan.title(),
            plan=plan,
            credits=str(PLAN_ALLOWANCES[plan]),
            object_id=f"prod_demo_{plan}",
        )
        prices[plan] = stripe.create_price(
            product["id"], cents, object_id=f"price_demo_{plan}_monthly"
        )["id"]
    customers: dict[str, str] = {}
    for tenant in data.tenants:
        if tenant.account_id not in STRIPE_PLAN:
            continue  # free plan: no Stripe customer
        stripe_plan = STRIPE_PLAN[tenant.account_id]
        this = MonthSpan.containing(data.end, zone_of(tenant.time_zone))
        last = MonthSpan.containing(this.start - timedelta(milliseconds=1), this.zone)
        customer = stripe.create_customer(
            email=f"billing@{tenant.account_id}.example",
            name=tenant.organisation,
            account=tenant.account_id,
            object_id=f"cus_demo_{tenant.account_id}",
            created=int(last.start.timestamp()),
        )
        customers[tenant.account_id] = customer["id"]
        sub = stripe.create_subscription(
            customer["id"],
            [(prices[stripe_plan], 1)],
            period_start=int(last.start.timestamp()),
            period_end=int(this.start.timestamp()),
            object_id=f"sub_demo_{tenant.account_id}",
        )
        stripe.create_invoice(customer["id"], subscription_id=sub["id"], status="paid")
        stripe.renew_subscription(sub["id"], period_end=int(this.end.timestamp()))
        if tenant.account_id == PAST_DUE:
            invoice = stripe.create_invoice(
                customer["id"], subscription_id=sub["id"], status="open"
            )
            stripe.fail_invoice_payment(invoice["id"])
        else:
            stripe.create_invoice(customer["id"], subscription_id=sub["id"], status="paid")
    if "acme" in customers:
        stripe.add_balance_transaction(customers["acme"], -5_000, description="goodwill credit")
    stray_id, email, account = STRAY_CUSTOMER
    stripe.create_customer(email=email, name="Hooli", account=account, object_id=stray_id)
    return customers


def _link_accounts(store: Store, customers: dict[str, str], actor: str) -> None:
    for account_id, customer_id in customers.items():
        account = tenants.get_account(store, account_id)
        if account is not None and not account["stripe_customer_id"]:
            tenants.update_account(store, account_id, actor=actor, stripe_customer_id=customer_id)


def seed_billing(
    store: Store, data: DemoData, actor: str, *, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Sync billing for the demo's accounts and return one summary row per account."""
    if settings is not None and settings.stripe_api_key.get_secret_value().strip():
        source = StripeSource(make_client(settings), settings.stripe_api_base)
        BillingSync(store, source, actor=actor).run()
        return billing_summary(store)
    began = time.monotonic()
    # Stripe's clock runs from the demo's end time, so periods match the generated month.
    stripe = LocalStripe(clock=lambda: data.end.timestamp() + (time.monotonic() - began))
    with stripe:
        customers = seed_local_stripe(stripe, data)
        _link_accounts(store, customers, actor)
        source = StripeSource(new_client(stripe.api_key, stripe.url, 1), stripe.url)
        BillingSync(store, source, actor=actor, clock=stripe.now_datetime).run(full=True)
    return billing_summary(store)
