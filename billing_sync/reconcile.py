"""Reconciliation: where meterhouse's belief and Stripe's record disagree, said loudly.

Each pass compares every account (plan, status, Stripe customer, plan allowances granted)
with the mirror of Stripe (customers, active subscription and its plan, quantity and
period, invoices) and writes one ``reconciliation_issues`` row per disagreement, keyed by
kind and subject so the same disagreement keeps its ``first_seen`` across passes. An open
issue that a pass no longer finds is closed (``status = resolved``) by that pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing_sync.allowances import allowances_due
from billing_sync.views import (
    ACTIVE_STATUSES,
    FREE_PLAN,
    Account,
    BillingView,
    load_view,
)
from meterhouse.store.base import Store

ISSUE_KINDS: Final = (
    "plan_mismatch",
    "past_due_invoice",
    "uncollectible_invoice",
    "customer_without_account",
    "account_without_subscription",
    "missing_allowance_grant",
    "allowance_mismatch",
    "deleted_customer",
    "unknown_customer",
    "customer_link_mismatch",
    "missing_customer_link",
    "multiple_subscriptions",
    "unmapped_plan",
    "closed_account_subscribed",
)


@dataclass(frozen=True)
class Issue:
    kind: str
    subject: str  # account, customer or invoice id
    account_id: str
    customer_id: str
    meterhouse_value: str
    stripe_value: str
    suggested_action: str

    @property
    def issue_id(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True)
class ReconcileReport:
    found: list[Issue]
    opened: int  # not open before this pass
    resolved: int  # open before, gone now
    open_by_kind: dict[str, int]


def _fmt_period(start: datetime, end: datetime, time_zone: str) -> str:
    """A period as the account's local dates (its months are the ones people know)."""
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return f"{start.astimezone(zone):%Y-%m-%d} to {end.astimezone(zone):%Y-%m-%d}"


def _credits(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:.2f} {currency.upper()}" if currency else str(minor)


def _account_issues(view: BillingView, account: Account) -> Iterable[Issue]:
    a = account.account_id
    customer = view.customer_of(account)
    cid = account.stripe_customer_id
    if cid:
        if customer is None:
            yield Issue(
                "unknown_customer",
                a,
                a,
                cid,
                cid,
                "no such customer in the Stripe mirror",
                f"check the id; `meterhouse billing sync --full` if it is new, else "
                f"`meterhouse accounts update {a} --stripe-customer-id <cus_…>`",
            )
            return
        if customer.deleted:
            yield Issue(
                "deleted_customer",
                a,
                a,
                cid,
                cid,
                f"{cid} is deleted in Stripe",
                f"link a live customer: `meterhouse accounts update {a} --stripe-customer-id "
                "<cus_…>`, or close the account",
            )
            return
        if customer.account_id and customer.account_id != a:
            yield Issue(
                "customer_link_mismatch",
                a,
                a,
                cid,
                f"{a} -> {cid}",
                f"{cid} metadata.meterhouse_account = {customer.account_id}",
                "fix the customer's metadata.meterhouse_account in Stripe or the account's "
                "stripe_customer_id",
            )
    else:
        named = view.customers_naming(a)
        if named:
            ids = ", ".join(c.customer_id for c in named)
            yield Issue(
                "missing_customer_link",
                a,
                a,
                named[0].customer_id,
                "no stripe_customer_id",
                f"metadata.meterhouse_account = {a} on {ids}",
                f"`meterhouse accounts update {a} --stripe-customer-id {named[0].customer_id}`",
            )
    if customer is None:
        if account.plan != FREE_PLAN and account.status != "closed":
            yield Issue(
                "account_without_subscription",
                a,
                a,
                "",
                f"plan {account.plan}",
                "no Stripe customer",
                f"link the account to its Stripe customer, or set the plan to {FREE_PLAN}",
            )
        return
    yield from _subscription_issues(view, account, customer.customer_id)


def _subscription_issues(view: BillingView, account: Account, cid: str) -> Iterable[Issue]:
    a = account.account_id
    subs = view.subscriptions_of(cid)
    active = [s for s in subs if s.status in ACTIVE_STATUSES]
    if account.status == "closed":
        for sub in active:
            yield Issue(
                "closed_account_subscribed",
                a,
                a,
                cid,
                "account closed",
                f"{sub.subscription_id} is {sub.status}",
                "cancel the subscription in Stripe, or reopen the account",
            )
        return
    if not active:
        if account.plan != FREE_PLAN:
            others = ", ".join(f"{s.subscription_id} {s.status}" for s in subs) or "none"
            yield Issue(
                "account_without_subscription",
                a,
                a,
                cid,
                f"plan {account.plan}",
                f"no active subscription (subscriptions: {others})",
                f"create the subscription in Stripe, or `meterhouse accounts update {a} "
                f"--plan {FREE_PLAN}`",
            )
        return
    if len(active) > 1:
        yield Issue(
            "multiple_subscriptions",
            a,
            a,
            cid,
            f"plan {account.plan}",
            ", ".join(f"{s.subscription_id} ({s.plan or 'no plan'})" for s in active),
            "cancel the extra subscriptions in Stripe",
        )
    sub = active[0]
    if not sub.plan:
        products = ", ".join(sorted({item.product_id for item in sub.items})) or "no items"
        yield Issue(
            "unmapped_plan",
            sub.subscription_id,
            a,
            cid,
            f"plan {account.plan}",
            f"{sub.subscription_id}: no product with metadata.meterhouse_plan ({products})",
            "set metadata.meterhouse_plan (and meterhouse_credits) on the product in Stripe",
        )
    elif sub.plan != account.plan:
        item = sub.plan_item
        product = item.product_id if item else ""
        yield Issue(
            "plan_mismatch",
            a,
            a,
            cid,
            account.plan,
            f"{sub.plan} ({sub.subscription_id}, {product})",
            f"`meterhouse accounts update {a} --plan {sub.plan}` if Stripe is right, else "
            "change the subscription in Stripe",
        )


def _allowance_issues(view: BillingView, now: datetime) -> Iterable[Issue]:
    for due in allowances_due(view, now):
        sub = due.subscription
        grants = view.granted_in(due.account_id, due.period_start, due.period_end)
        granted = sum((grant.amount for grant in grants), Decimal(0))
        account = view.accounts[due.account_id]
        period = _fmt_period(due.period_start, due.period_end, account.time_zone)
        expected = f"{_credits(due.amount)} credits for {period} ({sub.subscription_id})"
        if not grants:
            yield Issue(
                "missing_allowance_grant",
                due.key,
                due.account_id,
                sub.customer_id,
                "no plan_allowance grant",
                expected,
                "run `meterhouse billing sync` (it grants due allowances)",
            )
        elif granted != due.amount:
            yield Issue(
                "allowance_mismatch",
                due.key,
                due.account_id,
                sub.customer_id,
                f"{_credits(granted)} credits granted",
                expected,
                "grant the difference as an adjustment (quantity or plan changed mid-period)",
            )


def _invoice_issues(view: BillingView, now: datetime) -> Iterable[Issue]:
    for invoice in view.invoices:
        account = view.account_of(invoice.customer_id)
        a = account.account_id if account else ""
        owed = _money(invoice.amount_remaining, invoice.currency)
        if invoice.status == "uncollectible":
            yield Issue(
                "uncollectible_invoice",
                invoice.invoice_id,
                a,
                invoice.customer_id,
                f"account {a or '(none)'} in good standing",
                f"{invoice.invoice_id} uncollectible, {owed} unpaid",
                "collect outside Stripe or write it off; consider suspending the account",
            )
            continue
        overdue = invoice.due_date is not None and invoice.due_date < now
        failed = invoice.collection_method == "charge_automatically" and invoice.attempt_count > 0
        if overdue or failed:
            why = "past its due date" if overdue else f"{invoice.attempt_count} failed payment(s)"
            yield Issue(
                "past_due_invoice",
                invoice.invoice_id,
                a,
                invoice.customer_id,
                f"account {a or '(none)'} in good standing",
                f"{invoice.invoice_id} open, {owed} due, {why}",
                "ask the customer to pay (billing portal) or suspend the account",
            )


def _customer_issues(view: BillingView) -> Iterable[Issue]:
    for customer in sorted(view.customers.values(), key=lambda c: c.customer_id):
        if customer.deleted or view.account_of(customer.customer_id) is not None:
            continue
        named = customer.account_id
        meterhouse = f"no account {named}" if named else "no account links to it"
        yield Issue(
            "customer_without_account",
            customer.customer_id,
            named,
            customer.customer_id,
            meterhouse,
            f"{customer.customer_id} {customer.email}".strip()
            + (f" (metadata.meterhouse_account = {named})" if named else ""),
            "create the account and link it, or set metadata.meterhouse_account in Stripe",
        )


def find_issues(view: BillingView, now: datetime) -> list[Issue]:
    """Every disagreement between the accounts and the Stripe mirror, in a stable order."""
    issues: list[Issue] = []
    for account in sorted(view.accounts.values(), key=lambda a: a.account_id):
        issues.extend(_account_issues(view, account))
    issues.extend(_allowance_issues(view, now))
    issues.extend(_invoice_issues(view, now))
    issues.extend(_customer_issues(view))
    unique = {issue.issue_id: issue for issue in issues}
    return sorted(unique.values(), key=lambda i: i.issue_id)


def _stored_open(store: Store) -> tuple[dict[str, dict[str, Any]], int]:
    result = store.query("SELECT * FROM reconciliation_issues FINAL")
    rows = list(result.dicts())
    top = max((int(row["version"]) for row in rows), default=0)
    return {row["issue_id"]: row for row in rows if row["status"] == "open"}, top


def _row(
    issue: Issue, status: str, first: datetime, last: datetime, version: int
) -> dict[str, Any]:
    return {
        "issue_id": issue.issue_id,
        "subject": issue.subject,
        "account_id": issue.account_id,
        "customer_id": issue.customer_id,
        "kind": issue.kind,
        "meterhouse_value": issue.meterhouse_value,
        "stripe_value": issue.stripe_value,
        "suggested_action": issue.suggested_action,
        "status": status,
        "first_seen": first,
        "last_seen": last,
        "resolved_at": None,
        "version": version,
    }


def store_issues(store: Store, issues: list[Issue], now: datetime) -> ReconcileReport:
    """Write this pass's issues (open) and close the open ones it did not find."""
    before, top = _stored_open(store)
    version = max(int(now.timestamp() * 1000), top + 1)
    rows: list[dict[str, Any]] = []
    for issue in issues:
        previous = before.get(issue.issue_id)
        first = previous["first_seen"] if previous else now
        rows.append(_row(issue, "open", first, now, version))
    found_ids = {issue.issue_id for issue in issues}
    gone = [row for issue_id, row in before.items() if issue_id not in found_ids]
    for row in gone:
        rows.append({**row, "status": "resolved", "resolved_at": now, "version": version})
    if rows:
        store.insert("reconciliation_issues", {key: [row[key] for row in rows] for key in rows[0]})
    counts = dict.fromkeys(ISSUE_KINDS, 0)
    for issue in issues:
        counts[issue.kind] = counts.get(issue.kind, 0) + 1
    opened = sum(1 for issue in issues if issue.issue_id not in before)
    return ReconcileReport(issues, opened, len(gone), counts)


def reconcile(store: Store, now: datetime, view: BillingView | None = None) -> ReconcileReport:
    """Compare, store the issues, and return what was found."""
    view = view if view is not None else load_view(store)
    return store_issues(store, find_issues(view, now), now)


def list_issues(store: Store, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT issue_id, status, kind, account_id, customer_id, meterhouse_value, stripe_value, "
        "suggested_action, first_seen, last_seen, resolved_at FROM reconciliation_issues FINAL "
        "WHERE {all:UInt8} = 1 OR status = 'open' ORDER BY status, kind, issue_id",
        {"all": 1 if include_resolved else 0},
    )
    return list(result.dicts())
