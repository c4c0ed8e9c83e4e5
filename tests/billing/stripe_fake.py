"""The fake Stripe the billing tests run the official library against.

It is billing_sync's LocalStripe (the same HTTP server, pagination, Events API, errors),
with two differences that keep it honest:

- every object is built from Stripe's published fixtures (``fixtures3.json``), patched
  to the 2026-07-29.dahlia shapes (legacy keys dropped, new required keys added);
- every object it serves is validated, before it is sent, against Stripe's published
  component schemas for that version (``schemas_subset_2026-07-29.dahlia.json``) with
  jsonschema. ``$ref`` targets are not part of the subset and accept anything; nullable
  fields accept null; objects accept no key their schema does not list, so a legacy or
  misspelt key fails the test that served it.

shared/ is found beside the clone (CI) or through MH_SHARED_DIR.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema

from billing_sync.client import PINNED_API_VERSION
from meterhouse.demo.local_stripe import LocalStripe

Obj = dict[str, Any]
FAKE_API_KEY: Final = "sk_test_fake_meterhouse_0123456789"
WEBHOOK_SECRET: Final = "whsec_test_fake_meterhouse"
# Kinds served that the schema subset does not cover: checked against the fixture's keys.
KEY_CHECKED: Final = ("billing_portal.session",)
# Which schema an object's `object` field selects (events carry any of them).
OBJECT_SCHEMAS: Final = {
    "customer": "customer",
    "product": "product",
    "price": "price",
    "subscription": "subscription",
    "subscription_item": "subscription_item",
    "invoice": "invoice",
    "line_item": "line_item",
    "customer_balance_transaction": "customer_balance_transaction",
}


def shared_dir() -> Path:
    here = Path(__file__).resolve().parents[3] / "shared"
    if (here / "reference" / "stripe").is_dir():
        return here
    configured = os.environ.get("MH_SHARED_DIR", "")
    if configured and (Path(configured) / "reference" / "stripe").is_dir():
        return Path(configured)
    raise FileNotFoundError(
        f"Stripe reference data not found in {here} nor MH_SHARED_DIR ({configured!r}); "
        "put shared/ beside the clone or set MH_SHARED_DIR"
    )


def reference_file(name: str) -> Any:
    return json.loads((shared_dir() / "reference" / "stripe" / name).read_text())


# -- schemas -------------------------------------------------------------------------------


def prepare(schema: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema, strict about unknown keys, lax about $ref."""
    if isinstance(schema, list):
        return [prepare(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {}  # the subset leaves $ref targets out: anything goes there
    out = {k: prepare(v) for k, v in schema.items() if not k.startswith("x-") and k != "nullable"}
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class SchemaChecker:
    """Raises AssertionError when an object does not fit Stripe's published schema."""

    def __init__(self) -> None:
        spec = reference_file("schemas_subset_2026-07-29.dahlia.json")
        assert spec["info"]["version"] == PINNED_API_VERSION
        self.validators = {
            name: jsonschema.Draft7Validator(prepare(schema))
            for name, schema in spec["components"]["schemas"].items()
        }
        envelope = prepare(spec["list_object_example"])
        envelope["properties"]["url"].pop("pattern", None)  # the example is /v1/accounts'
        self.validators["list"] = jsonschema.Draft7Validator(envelope)
        fixtures = reference_file("fixtures3.json")["resources"]
        self.fixture_keys = {kind: set(fixtures[kind]) for kind in KEY_CHECKED}
        self.checked = 0
        self._seen: dict[int, Obj] = {}

    def _validate(self, name: str, obj: Obj, where: str) -> None:
        # Objects are never changed in place (see LocalStripe), so one object validated
        # once is validated for good; a price shared by 2,000 items is checked once.
        if name != "list" and self._seen.get(id(obj)) is obj:
            return
        errors = sorted(self.validators[name].iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            shown = "; ".join(f"{'/'.join(map(str, e.path)) or '.'}: {e.message}" for e in errors)
            raise AssertionError(f"{where} ({name} {obj.get('id')}) is not Stripe-shaped: {shown}")
        if name != "list":
            self._seen[id(obj)] = obj
        self.checked += 1

    def __call__(self, kind: str, obj: Obj) -> None:
        if kind in KEY_CHECKED:
            extra = set(obj) - self.fixture_keys[kind]
            assert not extra, f"{kind} has keys Stripe's fixture does not: {sorted(extra)}"
            return
        self._validate(kind, obj, kind)
        if kind == "list":
            return
        if kind == "subscription":
            for item in obj["items"]["data"]:
                self("subscription_item", item)
        elif kind == "subscription_item":
            self._validate("price", item_price(obj), "subscription_item.price")
        elif kind == "invoice":
            for line in obj["lines"]["data"]:
                self._validate("line_item", line, "invoice.lines")
        elif kind == "event":
            data = obj["data"]["object"]
            schema = OBJECT_SCHEMAS.get(str(data.get("object")))
            assert schema is not None, f"event {obj['id']} carries an unexpected {data}"
            self(schema, data)


def item_price(item: Obj) -> Obj:
    price: Obj = item["price"]
    return price


# -- templates -----------------------------------------------------------------------------


@cache
def fixture_templates() -> dict[str, Obj]:
    """Stripe's fixtures, patched from their mixed history to the dahlia shapes."""
    resources = reference_file("fixtures3.json")["resources"]
    kinds = (
        "customer",
        "product",
        "price",
        "subscription",
        "subscription_item",
        "invoice",
        "line_item",
        "customer_balance_transaction",
        "event",
        "billing_portal.session",
    )
    templates = {kind: copy.deepcopy(resources[kind]) for kind in kinds}
    templates["product"].pop("type")  # removed from products since 2023
    templates["subscription_item"].pop("plan")  # legacy mirror of the price
    templates["invoice"].pop("subscription")  # now parent.subscription_details.subscription
    templates["invoice"]["amount_paid_off_stripe"] = 0  # required in dahlia
    templates["event"]["api_version"] = PINNED_API_VERSION
    return templates


def make_fake(
    *, clock: Callable[[], float] | None = None, templates: dict[str, Obj] | None = None
) -> LocalStripe:
    """A fake Stripe from fixtures, checking every object it serves (not started)."""
    kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
    return LocalStripe(
        api_key=FAKE_API_KEY,
        templates=templates if templates is not None else fixture_templates(),
        check=SchemaChecker(),
        **kwargs,
    )


# -- seeding -------------------------------------------------------------------------------

PLAN_PRICES: Final = {"starter": (4_900, "20000"), "pro": (49_900, "250000.5")}


def seed_catalog(fake: LocalStripe, *, emit: bool = False) -> dict[str, str]:
    """Products with meterhouse plan metadata and their monthly prices: plan -> price id."""
    created = fake.now() - 90 * 86_400
    prices = {}
    for plan, (cents, credits) in PLAN_PRICES.items():
        product = fake.create_product(
            plan.title(), plan=plan, credits=credits, created=created, emit=emit
        )
        prices[plan] = fake.create_price(product["id"], cents, created=created, emit=emit)["id"]
    return prices


def seed_customers(fake: LocalStripe, count: int, prices: dict[str, str]) -> list[Obj]:
    """``count`` customers, each with a subscription and two paid invoices, older than the
    30 days Stripe keeps events (so they exist only as objects). Every 10th customer has a
    balance transaction, every 25th a canceled second subscription."""
    now = fake.now()
    subs = []
    plans = sorted(prices)
    for n in range(count):
        created = now - 60 * 86_400 + n
        customer = fake.create_customer(
            email=f"billing{n}@customer{n}.example",
            name=f"Customer {n}",
            account=f"acct{n:05d}",
            created=created,
            emit=False,
        )
        sub = fake.create_subscription(
            customer["id"],
            [(prices[plans[n % len(plans)]], 1 + n % 3)],
            period_start=now - 10 * 86_400,
            created=created,
            emit=False,
        )
        subs.append(sub)
        fake.create_invoice(customer["id"], subscription_id=sub["id"], created=created, emit=False)
        fake.create_invoice(customer["id"], extra_lines=1, created=created, emit=False)
        if n % 10 == 0:
            fake.add_balance_transaction(
                customer["id"], -100 * (n + 1), created=created, emit=False
            )
        if n % 25 == 0:
            old = fake.create_subscription(
                customer["id"], [(prices[plans[0]], 1)], period_start=created, emit=False
            )
            fake.objects["subscription"][old["id"]] = {**old, "status": "canceled"}
    return subs
