"""The fake serves only Stripe-shaped objects, and the check would notice if it did not."""

from __future__ import annotations

import copy

import pytest

from billing_sync.source import StripeSource
from meterhouse.demo.billing_seed import seed_local_stripe
from meterhouse.demo.generator import generate
from meterhouse.demo.local_stripe import LocalStripe
from meterhouse.demo.local_stripe_objects import BUILTIN_TEMPLATES
from tests.billing.stripe_fake import SchemaChecker, make_fake, seed_catalog, seed_customers


def every_object(stripe: LocalStripe) -> list[tuple[str, dict]]:
    found = [
        (kind, obj)
        for kind, table in stripe.objects.items()
        for obj in table.values()
        if not obj.get("deleted")
    ]
    found += [
        ("customer_balance_transaction", tx)
        for txs in stripe.balance_transactions.values()
        for tx in txs
    ]
    found += [("line_item", line) for lines in stripe.lines.values() for line in lines]
    return found + [("event", event) for event in stripe.events]


def exercise(stripe: LocalStripe) -> None:
    """Every change the fake can make, so every shape it can produce exists."""
    prices = seed_catalog(stripe, emit=True)
    subs = seed_customers(stripe, 3, prices)
    customer = subs[0]["customer"]
    stripe.update_customer(customer, email="new@example.com")
    stripe.update_subscription(subs[0]["id"], quantity=4)
    stripe.renew_subscription(subs[1]["id"])
    invoice = stripe.create_invoice(customer, subscription_id=subs[0]["id"], status="open")
    stripe.fail_invoice_payment(invoice["id"])
    stripe.set_invoice_status(invoice["id"], "uncollectible")
    stripe.create_invoice(customer, extra_lines=11, status="void")
    stripe.add_balance_transaction(customer, 700)
    stripe.cancel_subscription(subs[2]["id"])
    stripe.delete_customer(subs[2]["customer"])


@pytest.mark.parametrize("templates", ["fixtures", "builtin"])
def test_every_object_fits_the_dahlia_schemas(templates: str) -> None:
    checker = SchemaChecker()
    stripe = make_fake() if templates == "fixtures" else LocalStripe(templates=BUILTIN_TEMPLATES)
    exercise(stripe)
    if templates == "builtin":  # and the demo's own objects
        seed_local_stripe(stripe, generate(stripe.now_datetime(), days=1, scale=0.01))
    objects = every_object(stripe)
    for kind, obj in objects:
        checker(kind, obj)
    assert checker.checked >= len(objects)
    kinds = {kind for kind, _ in objects}
    assert kinds >= {
        "customer", "product", "price", "subscription", "invoice", "line_item",
        "customer_balance_transaction", "event",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "change", "complaint"),
    [
        ("invoice", lambda o: o.update(subscription="sub_1"), "'subscription' was unexpected"),
        ("subscription", lambda o: o["items"]["data"][0].update(plan={}), "'plan' was unexpected"),
        ("product", lambda o: o.update(type="service"), "'type' was unexpected"),
        (
            "invoice",
            lambda o: o.pop("amount_paid_off_stripe"),
            "'amount_paid_off_stripe' is a required",
        ),
        ("price", lambda o: o.update(unit_amount="4900"), "is not of type 'integer', 'null'"),
        ("subscription", lambda o: o.update(status="overdue"), "'overdue' is not one of"),
    ],
)
def test_the_check_refuses_pre_dahlia_and_wrong_shapes(kind: str, change, complaint: str) -> None:
    stripe = make_fake()
    exercise(stripe)
    obj = copy.deepcopy(next(o for k, o in every_object(stripe) if k == kind))
    SchemaChecker()(kind, obj)  # as built: fine
    change(obj)
    with pytest.raises(AssertionError, match=complaint):
        SchemaChecker()(kind, obj)


def test_the_fake_refuses_to_serve_an_object_that_drifted(
    fake: LocalStripe, source: StripeSource
) -> None:
    seed_catalog(fake)
    customer = fake.create_customer(email="a@example.com")
    fake.objects["customer"][customer["id"]] = {**customer, "subscription": "sub_legacy"}
    with pytest.raises(Exception, match="not Stripe-shaped"):
        list(source.pages("customer"))
    assert len(fake.server.errors) == 1
    fake.server.errors.clear()
