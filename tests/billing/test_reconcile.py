"""Reconciliation finds each planted disagreement, nothing else, and closes what is fixed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from billing_sync.allowances import allowances_due
from billing_sync.metrics import BillingMetrics
from billing_sync.reconcile import list_issues, reconcile
from billing_sync.scheduler import BillingScheduler
from billing_sync.source import StripeSource
from billing_sync.sync import BillingSync
from billing_sync.views import load_view
from meterhouse.access import tenants
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.ledger.grants import create_grant
from meterhouse.store.base import Store
from tests.billing.stripe_fake import seed_catalog

ACTOR = "test:billing"


def customer(fake: LocalStripe, account: str) -> str:
    return str(fake.create_customer(email=f"pay@{account}.example", account=account)["id"])


def plant(store: Store, fake: LocalStripe, prices: dict[str, str]) -> dict[str, str]:
    """Accounts and Stripe objects with exactly five disagreements; returns the ids."""
    ids: dict[str, str] = {}
    for account, plan, stripe_plan in (
        ("ok", "pro", "pro"),
        ("plan", "starter", "pro"),  # plan mismatch
        ("pastdue", "starter", "starter"),  # its invoice failed to charge
        ("nosub", "pro", None),  # customer, but no subscription
        ("nogrant", "pro", "pro"),  # its allowance will not be granted
    ):
        cus = customer(fake, account)
        tenants.create_account(store, account, actor=ACTOR, plan=plan, stripe_customer_id=cus)
        if stripe_plan is not None:
            sub = fake.create_subscription(cus, [(prices[stripe_plan], 1)])
            fake.create_invoice(cus, subscription_id=sub["id"], status="paid")
            ids[f"sub:{account}"] = sub["id"]
        ids[account] = cus
    tenants.create_account(store, "free", actor=ACTOR, plan="free")  # no Stripe: fine
    invoice = fake.create_invoice(ids["pastdue"], subscription_id=ids["sub:pastdue"], status="open")
    fake.fail_invoice_payment(invoice["id"])
    ids["invoice"] = invoice["id"]
    ids["stray"] = customer(fake, "ghost")  # names an account meterhouse does not have
    return ids


def grant_all_but(store: Store, fake: LocalStripe, skipped_account: str) -> None:
    for due in allowances_due(load_view(store), fake.now_datetime()):
        if due.account_id != skipped_account:
            create_grant(
                store,
                account_id=due.account_id,
                kind="plan_allowance",
                amount=due.amount,
                effective_at=due.period_start,
                expires_at=due.period_end,
                idempotency_key=due.key,
                actor=ACTOR,
            )


def test_each_planted_disagreement_is_found_and_nothing_else(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    ids = plant(migrated_store, fake, prices)
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime, grant_allowances=False)
    sync.run()
    grant_all_but(migrated_store, fake, "nogrant")

    report = reconcile(migrated_store, fake.now_datetime())

    found = {(issue.kind, issue.account_id or issue.customer_id) for issue in report.found}
    assert found == {
        ("plan_mismatch", "plan"),
        ("past_due_invoice", "pastdue"),
        ("account_without_subscription", "nosub"),
        ("missing_allowance_grant", "nogrant"),
        ("customer_without_account", "ghost"),
    }
    by_kind = {issue.kind: issue for issue in report.found}
    assert by_kind["plan_mismatch"].meterhouse_value == "starter"
    assert by_kind["plan_mismatch"].stripe_value.startswith("pro (")
    assert by_kind["past_due_invoice"].subject == ids["invoice"]
    assert "1 failed payment" in by_kind["past_due_invoice"].stripe_value
    assert by_kind["customer_without_account"].customer_id == ids["stray"]
    assert by_kind["missing_allowance_grant"].subject.startswith(f"allowance:{ids['sub:nogrant']}:")
    stored = list_issues(migrated_store)
    assert len(stored) == 5
    assert {row["status"] for row in stored} == {"open"}
    assert all(row["suggested_action"] for row in stored)


def test_fixed_disagreements_close_themselves_and_the_gauge_follows(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    ids = plant(migrated_store, fake, prices)
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime, grant_allowances=False)
    sync.run()
    grant_all_but(migrated_store, fake, "nogrant")
    registry = CollectorRegistry()
    scheduler = BillingScheduler(
        BillingSync(migrated_store, source, clock=fake.now_datetime),
        BillingMetrics(registry),
        interval_seconds=60,
        full_interval_seconds=3600,
    )

    def gauge(kind: str) -> float | None:
        return registry.get_sample_value("meterhouse_reconciliation_issues", {"kind": kind})

    first = scheduler.run_pass(full=False)  # this pass grants the missing allowance
    assert first is not None and first.grants_created == 1
    assert gauge("plan_mismatch") == 1
    assert gauge("missing_allowance_grant") == 0
    first_seen = {row["issue_id"]: row["first_seen"] for row in list_issues(migrated_store)}

    tenants.update_account(migrated_store, "plan", actor=ACTOR, plan="pro")
    fake.set_invoice_status(ids["invoice"], "paid")
    fake.create_subscription(ids["nosub"], [(prices["pro"], 1)])
    tenants.create_account(
        migrated_store, "ghost", actor=ACTOR, plan="free", stripe_customer_id=ids["stray"]
    )
    second = scheduler.run_pass(full=False)

    assert second is not None and second.issues is not None
    assert second.issues.found == []
    assert second.issues.resolved == 4
    assert second.grants_created == 1  # nosub's new subscription
    for kind in ("plan_mismatch", "past_due_invoice", "customer_without_account"):
        assert gauge(kind) == 0
    rows = list_issues(migrated_store, include_resolved=True)
    assert {row["status"] for row in rows} == {"resolved"}
    for row in rows:
        assert row["resolved_at"] is not None
        if row["issue_id"] in first_seen:
            assert row["first_seen"] == first_seen[row["issue_id"]]


def test_deleted_customer_and_changed_quantity_are_reported(
    migrated_store: Store, fake: LocalStripe, source: StripeSource
) -> None:
    prices = seed_catalog(fake)
    gone = customer(fake, "gone")
    tenants.create_account(migrated_store, "gone", actor=ACTOR, plan="pro", stripe_customer_id=gone)
    seats = customer(fake, "seats")
    tenants.create_account(
        migrated_store, "seats", actor=ACTOR, plan="pro", stripe_customer_id=seats
    )
    sub = fake.create_subscription(seats, [(prices["pro"], 1)])
    sync = BillingSync(migrated_store, source, clock=fake.now_datetime)
    assert sync.run().grants_created == 1

    fake.delete_customer(gone)
    fake.update_subscription(sub["id"], quantity=3)  # mid-period: 1 seat granted, 3 due
    report = sync.run()

    assert report.issues is not None
    kinds = {(issue.kind, issue.account_id) for issue in report.issues.found}
    assert kinds == {("deleted_customer", "gone"), ("allowance_mismatch", "seats")}
    mismatch = next(i for i in report.issues.found if i.kind == "allowance_mismatch")
    assert mismatch.meterhouse_value == "250000.5 credits granted"
    assert mismatch.stripe_value.startswith("750001.5 credits for ")
