"""What the mirror says, per account: the plan Stripe bills, its period and its credits.

Read in a handful of set-based queries (not one per account), then joined in Python, so
allowances and reconciliation cost the same whether there are 5 accounts or 5,000.

Linking an account to its Stripe customer: meterhouse's own ``accounts.stripe_customer_id``
first; otherwise a customer whose ``metadata.meterhouse_account`` names the account (the
reconciliation reports that the account lacks the link).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from meterhouse.store.base import Store

# Subscription states in which the customer has (or is still owed) the plan.
ACTIVE_STATUSES: Final = ("active", "trialing", "past_due")
# States in which the period's allowance is granted (past_due waits for the payment).
GRANTABLE_STATUSES: Final = ("active", "trialing")
FREE_PLAN: Final = "free"  # accounts on it need no subscription


@dataclass(frozen=True)
class Account:
    account_id: str
    plan: str
    status: str
    stripe_customer_id: str
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Customer:
    customer_id: str
    account_id: str  # metadata.meterhouse_account
    email: str
    deleted: bool


@dataclass
class Item:
    item_id: str
    price_id: str
    product_id: str
    quantity: int
    period_start: datetime
    period_end: datetime
    plan: str
    credits: Decimal  # per unit and period


@dataclass
class Subscription:
    subscription_id: str
    customer_id: str
    status: str
    items: list[Item] = field(default_factory=list)

    @property
    def plan_item(self) -> Item | None:
        """The item whose product names a meterhouse plan (the first, if several do)."""
        return next((item for item in self.items if item.plan), None)

    @property
    def plan(self) -> str:
        item = self.plan_item
        return item.plan if item else ""

    @property
    def allowance(self) -> Decimal:
        """Credits per period: each item's product credits times its quantity."""
        return sum((item.credits * item.quantity for item in self.items), Decimal(0))

    @property
    def period(self) -> tuple[datetime, datetime] | None:
        item = self.plan_item or (self.items[0] if self.items else None)
        return (item.period_start, item.period_end) if item else None

    def allowance_key(self) -> str | None:
        period = self.period
        if period is None:
            return None
        return allowance_key(self.subscription_id, period[0])


def allowance_key(subscription_id: str, period_start: datetime) -> str:
    return f"allowance:{subscription_id}:{int(period_start.timestamp())}"


@dataclass
class Invoice:
    invoice_id: str
    customer_id: str
    subscription_id: str
    status: str
    currency: str
    amount_remaining: int
    due_date: datetime | None
    collection_method: str
    attempt_count: int


@dataclass(frozen=True)
class AllowanceGrant:
    key: str
    amount: Decimal
    effective_at: datetime


@dataclass
class BillingView:
    accounts: dict[str, Account]
    customers: dict[str, Customer]
    subscriptions: dict[str, Subscription]
    invoices: list[Invoice]
    # account id -> its plan allowance grants (not voided), whoever granted them
    allowance_grants: dict[str, list[AllowanceGrant]]
    _linked: dict[str, list[Account]] = field(init=False, repr=False)
    _naming: dict[str, list[Customer]] = field(init=False, repr=False)
    _subscriptions_by_customer: dict[str, list[Subscription]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Indexes, so every lookup below is a dict access rather than a scan.
        self._linked = defaultdict(list)
        for account in sorted(self.accounts.values(), key=lambda a: a.account_id):
            if account.stripe_customer_id:
                self._linked[account.stripe_customer_id].append(account)
        self._naming = defaultdict(list)
        for customer in sorted(self.customers.values(), key=lambda c: c.customer_id):
            if customer.account_id and not customer.deleted:
                self._naming[customer.account_id].append(customer)
        self._subscriptions_by_customer = defaultdict(list)
        for sub in sorted(self.subscriptions.values(), key=lambda s: s.subscription_id):
            self._subscriptions_by_customer[sub.customer_id].append(sub)

    def customer_of(self, account: Account) -> Customer | None:
        """The account's customer: its own link, else the one whose metadata names it."""
        if account.stripe_customer_id:
            return self.customers.get(account.stripe_customer_id)
        named = self.customers_naming(account.account_id)
        return named[0] if len(named) == 1 else None

    def customers_naming(self, account_id: str) -> list[Customer]:
        """Customers (not deleted) whose metadata.meterhouse_account is ``account_id``."""
        return list(self._naming.get(account_id, ()))

    def accounts_linked_to(self, customer_id: str) -> list[Account]:
        """Accounts whose stripe_customer_id is ``customer_id``."""
        return list(self._linked.get(customer_id, ()))

    def account_of(self, customer_id: str) -> Account | None:
        """The account billed through this customer, by either side's link."""
        linked = self.accounts_linked_to(customer_id)
        if linked:
            return linked[0]
        customer = self.customers.get(customer_id)
        if customer is None or not customer.account_id:
            return None
        named = self.accounts.get(customer.account_id)
        if named is not None and named.stripe_customer_id in ("", customer_id):
            return named
        return None

    def subscriptions_of(self, customer_id: str) -> list[Subscription]:
        return list(self._subscriptions_by_customer.get(customer_id, ()))

    def granted_in(self, account_id: str, start: datetime, end: datetime) -> list[AllowanceGrant]:
        """Plan allowance grants of the account taking effect in [start, end): the period's,
        by the sync (its idempotency key) or by anyone else (support, an import, the demo)."""
        return [
            grant
            for grant in self.allowance_grants.get(account_id, ())
            if start <= grant.effective_at < end
        ]


def load_view(store: Store) -> BillingView:
    accounts = {
        row["account_id"]: Account(**row)
        for row in store.query(
            "SELECT account_id, plan, status, stripe_customer_id, time_zone FROM accounts FINAL "
            "WHERE is_deleted = 0"
        ).dicts()
    }
    customers = {
        row["customer_id"]: Customer(
            row["customer_id"], row["account_id"], row["email"], bool(row["deleted"])
        )
        for row in store.query(
            "SELECT customer_id, account_id, email, deleted FROM stripe_customers FINAL"
        ).dicts()
    }
    products = {
        row["product_id"]: (row["plan"], row["credits"])
        for row in store.query(
            "SELECT product_id, plan, credits FROM stripe_products FINAL WHERE deleted = 0"
        ).dicts()
    }
    subscriptions = {
        row["subscription_id"]: Subscription(
            row["subscription_id"], row["customer_id"], row["status"]
        )
        for row in store.query(
            "SELECT subscription_id, customer_id, status FROM stripe_subscriptions FINAL "
            "WHERE deleted = 0"
        ).dicts()
    }
    for row in store.query(
        "SELECT subscription_id, item_id, price_id, product_id, quantity, current_period_start, "
        "current_period_end FROM stripe_subscription_items FINAL WHERE deleted = 0 "
        "ORDER BY subscription_id, item_id"
    ).dicts():
        subscription = subscriptions.get(row["subscription_id"])
        if subscription is None:
            continue
        plan, credits = products.get(row["product_id"], ("", Decimal(0)))
        subscription.items.append(
            Item(
                row["item_id"],
                row["price_id"],
                row["product_id"],
                int(row["quantity"]),
                row["current_period_start"],
                row["current_period_end"],
                plan,
                credits,
            )
        )
    invoices = [
        Invoice(**row)
        for row in store.query(
            "SELECT invoice_id, customer_id, subscription_id, status, currency, amount_remaining, "
            "due_date, collection_method, attempt_count FROM stripe_invoices FINAL "
            "WHERE deleted = 0 AND status IN ('open', 'uncollectible') ORDER BY invoice_id"
        ).dicts()
    ]
    grants: dict[str, list[AllowanceGrant]] = defaultdict(list)
    for row in store.query(
        "SELECT account_id, idempotency_key, amount, effective_at FROM credit_grants FINAL "
        "WHERE kind = 'plan_allowance' AND voided = 0 ORDER BY account_id, effective_at"
    ).dicts():
        grants[row["account_id"]].append(
            AllowanceGrant(row["idempotency_key"], row["amount"], row["effective_at"])
        )
    return BillingView(accounts, customers, subscriptions, invoices, dict(grants))
