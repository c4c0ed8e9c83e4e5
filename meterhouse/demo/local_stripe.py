"""A local, in-memory Stripe account behind a Stripe-shaped HTTP API on 127.0.0.1.

For the demo (no Stripe key set) and the tests: the official ``stripe`` library talks to
it exactly as to api.stripe.com (list pagination with ``has_more``/``starting_after``, the
Events API, retrieve, invoice lines, balance transactions, billing portal sessions,
Stripe's error bodies). Every change made through the methods below updates the objects
and records the event Stripe would send, with the object as it was then.

It is not a Stripe emulator: it knows the handful of billing objects meterhouse reads and
speaks only API version 2026-07-29.dahlia. It never leaves 127.0.0.1 and holds no secrets
(the API key it accepts is whatever it is given; the default is a placeholder).

Objects are never changed in place: a change stores a new dict. That lets events keep the
object as it was, and lets the checker (``check``, used by the tests to validate against
Stripe's schemas) run once per object version.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

from billing_sync.client import PINNED_API_VERSION
from meterhouse.demo import local_stripe_objects as o
from meterhouse.demo.local_stripe_http import LocalStripeServer

Obj = dict[str, Any]
Checker = Callable[[str, Obj], None]
"""(object kind, object) -> None; raises when the object is not Stripe-shaped."""

DEFAULT_API_KEY: Final = "sk_test_local_meterhouse"
INVOICE_EVENT_FOR_STATUS: Final = {
    "open": "invoice.finalized",
    "paid": "invoice.paid",
    "uncollectible": "invoice.marked_uncollectible",
    "void": "invoice.voided",
}


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """``ts`` moved on by calendar months/years, weeks or days, as Stripe bills."""
    when = datetime.fromtimestamp(ts, tz=UTC)
    if interval in ("month", "year"):
        months = count * (12 if interval == "year" else 1)
        index = when.month - 1 + months
        year, month = when.year + index // 12, index % 12 + 1
        day = min(when.day, calendar.monthrange(year, month)[1])
        return int(when.replace(year=year, month=month, day=day).timestamp())
    days = {"week": 7, "day": 1}[interval] * count
    return ts + days * 86_400


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value: ``t=...,v1=HMAC-SHA256(secret, "t.payload")``."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class LocalStripe:
    """One Stripe account's billing objects, events and an HTTP server for them."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        templates: o.Templates | None = None,
        check: Checker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.api_version = PINNED_API_VERSION
        self.templates = templates if templates is not None else o.BUILTIN_TEMPLATES
        self.checker = check
        self._clock = clock
        self._offset = 0
        self._last_time = 0
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.objects: dict[str, dict[str, Obj]] = defaultdict(dict)
        self.order: dict[str, list[str]] = defaultdict(list)  # creation order, per kind
        self.items: dict[str, list[Obj]] = {}  # subscription -> all its items
        self.lines: dict[str, list[Obj]] = {}  # invoice -> all its lines
        self.balance_transactions: dict[str, list[Obj]] = defaultdict(list)
        self.events: list[Obj] = []
        self.event_by_id: dict[str, Obj] = {}
        self._checked: dict[int, Obj] = {}
        self._server: LocalStripeServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port); return the base URL."""
        if self._server is None:
            self._server = LocalStripeServer(self)
            self._server.start()
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalStripe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local Stripe server is not started")
        return self._server.url

    @property
    def server(self) -> LocalStripeServer:
        if self._server is None:
            raise RuntimeError("the local Stripe server is not started")
        return self._server

    # -- time and ids ----------------------------------------------------------------------

    def now(self) -> int:
        """Stripe's clock (Unix seconds), never going backwards."""
        with self.lock:
            self._last_time = max(self._last_time, int(self._clock()) + self._offset)
            return self._last_time

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def advance(self, seconds: int) -> None:
        """Move Stripe's clock forward (period renewals, due dates passing)."""
        with self.lock:
            self._offset += seconds

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_L{next(self._ids):013d}"

    # -- checked reads (the HTTP layer serves only through these) -------------------------

    def checked(self, kind: str, obj: Obj) -> Obj:
        """``obj`` after the checker accepted it (once per object version)."""
        if self.checker is not None and self._checked.get(id(obj)) is not obj:
            self.checker(kind, obj)
            self._checked[id(obj)] = obj
        return obj

    def check_list(self, envelope: Obj) -> Obj:
        if self.checker is not None:
            self.checker("list", envelope)
        return envelope

    def get(self, kind: str, object_id: str) -> Obj | None:
        with self.lock:
            return self.objects[kind].get(object_id)

    def newest_first(self, kind: str) -> list[Obj]:
        with self.lock:
            table = self.objects[kind]
            return [table[i] for i in reversed(self.order[kind])]

    # -- storing and events ----------------------------------------------------------------

    def _put(self, kind: str, obj: Obj) -> Obj:
        with self.lock:
            if obj["id"] not in self.objects[kind]:
                self.order[kind].append(obj["id"])
            self.objects[kind][obj["id"]] = obj
            return obj

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record the event Stripe would create for this change."""
        data: Obj = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event = o.build(
            self.templates,
            "event",
            id=self.new_id("evt"),
            created=self.now(),
            data=data,
            type=event_type,
            api_version=self.api_version,
            livemode=False,
            pending_webhooks=1,
            request={"id": None, "idempotency_key": None},
        )
        with self.lock:
            self.events.append(event)
            self.event_by_id[event["id"]] = event
        return event

    def _stamp(self, created: int | None) -> int:
        return created if created is not None else self.now()

    # -- products and prices ---------------------------------------------------------------

    def create_product(
        self,
        name: str,
        *,
        plan: str | None = None,
        credits: str | None = None,
        object_id: str | None = None,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        metadata = {}
        if plan is not None:
            metadata["meterhouse_plan"] = plan
        if credits is not None:
            metadata["meterhouse_credits"] = credits
        when = self._stamp(created)
        product = o.build(
            self.templates,
            "product",
            id=object_id or self.new_id("prod"),
            name=name,
            active=True,
            created=when,
            updated=when,
            metadata=metadata,
            default_price=None,
            description=f"{name} plan",
            images=[],
            marketing_features=[],
            package_dimensions=None,
            livemode=False,
        )
        product.pop("type", None)  # pre-dahlia key some templates still carry
        self._put("product", product)
        if emit:
            self.emit("product.created", product)
        return product

    def update_product(self, product_id: str, *, metadata: dict[str, str]) -> Obj:
        with self.lock:
            before = self.objects["product"][product_id]
            after = {**before, "metadata": metadata, "updated": self.now()}
            self._put("product", after)
        self.emit("product.updated", after, {"metadata": before["metadata"]})
        return after

    def create_price(
        self,
        product_id: str,
        unit_amount: int,
        *,
        currency: str = "usd",
        interval: str = "month",
        object_id: str | None = None,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        price = o.build(
            self.templates,
            "price",
            id=object_id or self.new_id("price"),
            product=product_id,
            active=True,
            billing_scheme="per_unit",
            created=self._stamp(created),
            currency=currency,
            custom_unit_amount=None,
            livemode=False,
            lookup_key=None,
            metadata={},
            nickname=None,
            recurring={
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            },
            tiers_mode=None,
            transform_quantity=None,
            type="recurring",
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
        )
        self._put("price", price)
        if emit:
            self.emit("price.created", price)
        return price

    # -- customers -------------------------------------------------------------------------

    def create_customer(
        self,
        *,
        email: str,
        name: str | None = None,
        account: str | None = None,
        object_id: str | None = None,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        customer = o.build(
            self.templates,
            "customer",
            id=object_id or self.new_id("cus"),
            email=email,
            name=name,
            created=self._stamp(created),
            metadata={"meterhouse_account": account} if account else {},
            balance=0,
            currency="usd",
            delinquent=False,
            discount=None,
            description=None,
            livemode=False,
            test_clock=None,
        )
        self._put("customer", customer)
        if emit:
            self.emit("customer.created", customer)
        return customer

    def update_customer(self, customer_id: str, **changes: Any) -> Obj:
        """Change customer fields (email, name, metadata, ...); emits customer.updated."""
        with self.lock:
            before = self.objects["customer"][customer_id]
            after = {**before, **changes}
            self._put("customer", after)
        previous = {key: before.get(key) for key in changes if before.get(key) != changes[key]}
        self.emit("customer.updated", after, previous)
        return after

    def delete_customer(self, customer_id: str) -> None:
        """Delete a customer: Stripe cancels its subscriptions, then deletes it."""
        for sub in self.newest_first("subscription"):
            if sub["customer"] == customer_id and sub["status"] != "canceled":
                self.cancel_subscription(sub["id"])
        with self.lock:
            customer = self.objects["customer"][customer_id]
            self.objects["customer"][customer_id] = {**customer, "deleted": True}
        self.emit("customer.deleted", customer)

    def add_balance_transaction(
        self,
        customer_id: str,
        amount: int,
        *,
        description: str | None = None,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        """A manual customer balance adjustment (negative = credit)."""
        with self.lock:
            customer = self.objects["customer"][customer_id]
            ending = int(customer.get("balance") or 0) + amount
            tx = o.build(
                self.templates,
                "customer_balance_transaction",
                id=self.new_id("cbtxn"),
                amount=amount,
                created=self._stamp(created),
                currency=customer.get("currency") or "usd",
                customer=customer_id,
                description=description,
                ending_balance=ending,
                invoice=None,
                credit_note=None,
                checkout_session=None,
                livemode=False,
                metadata=None,
                type="adjustment",
            )
            self.balance_transactions[customer_id].append(tx)
            after = {**customer, "balance": ending}
            self._put("customer", after)
        if emit:
            self.emit("customer.updated", after, {"balance": customer.get("balance")})
        return tx

    # -- subscriptions ---------------------------------------------------------------------

    def _item(self, sub_id: str, price_id: str, quantity: int, start: int, end: int) -> Obj:
        return o.build(
            self.templates,
            "subscription_item",
            id=self.new_id("si"),
            created=start,
            current_period_start=start,
            current_period_end=end,
            discounts=[],
            metadata={},
            price=self.objects["price"][price_id],
            quantity=quantity,
            subscription=sub_id,
            tax_rates=[],
            billing_thresholds=None,
        )

    def _with_items(self, sub: Obj, items: list[Obj]) -> Obj:
        self.items[sub["id"]] = items
        url = f"/v1/subscription_items?subscription={sub['id']}"
        return {**sub, "items": o.list_envelope(items, url)}

    def create_subscription(
        self,
        customer_id: str,
        prices: Iterable[tuple[str, int]],
        *,
        period_start: int | None = None,
        period_end: int | None = None,
        status: str = "active",
        object_id: str | None = None,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        """A subscription to (price id, quantity) pairs, its current period starting then
        (and lasting one price interval unless ``period_end`` says otherwise)."""
        with self.lock:
            sub_id = object_id or self.new_id("sub")
            start = period_start if period_start is not None else self.now()
            items = []
            for price_id, quantity in prices:
                interval = self.objects["price"][price_id]["recurring"]["interval"]
                end = period_end if period_end is not None else add_interval(start, interval)
                items.append(self._item(sub_id, price_id, quantity, start, end))
            when = created if created is not None else min(start, self.now())
            currency = items[0]["price"]["currency"] if items else "usd"
            sub = o.build(
                self.templates,
                "subscription",
                id=sub_id,
                customer=customer_id,
                status=status,
                created=when,
                start_date=when,
                billing_cycle_anchor=start,
                billing_cycle_anchor_config=None,
                cancel_at=None,
                cancel_at_period_end=False,
                canceled_at=None,
                cancellation_details={"comment": None, "feedback": None, "reason": None},
                collection_method="charge_automatically",
                currency=currency,
                discounts=[],
                ended_at=None,
                latest_invoice=None,
                livemode=False,
                metadata={},
                next_pending_invoice_item_invoice=None,
                pause_collection=None,
                pending_invoice_item_interval=None,
                pending_update=None,
                schedule=None,
                transfer_data=None,
                trial_end=None,
                trial_start=None,
                billing_thresholds=None,
                billing_schedules=[],
                billing_mode={"type": "classic"},
            )
            sub = self._put("subscription", self._with_items(sub, items))
        if emit:
            self.emit("customer.subscription.created", sub)
        return sub

    def update_subscription(
        self,
        sub_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        status: str | None = None,
    ) -> Obj:
        """Change the first item's price or quantity, or the status."""
        with self.lock:
            before = self.objects["subscription"][sub_id]
            items = list(self.items[sub_id])
            previous: Obj = {}
            if price_id is not None or quantity is not None:
                first = dict(items[0])
                if price_id is not None:
                    first["price"] = self.objects["price"][price_id]
                if quantity is not None:
                    first["quantity"] = quantity
                items[0] = first
                previous["items"] = before["items"]
            after = self._with_items(before, items)
            if status is not None:
                after["status"] = status
                previous["status"] = before["status"]
            self._put("subscription", after)
        self.emit("customer.subscription.updated", after, previous)
        return after

    def renew_subscription(self, sub_id: str, *, period_end: int | None = None) -> Obj:
        """Start the next period of every item (Stripe's period rollover)."""
        with self.lock:
            before = self.objects["subscription"][sub_id]
            items = []
            for item in self.items[sub_id]:
                interval = item["price"]["recurring"]["interval"]
                start = item["current_period_end"]
                end = period_end if period_end is not None else add_interval(start, interval)
                items.append({**item, "current_period_start": start, "current_period_end": end})
            after = self._put("subscription", self._with_items(before, items))
        self.emit("customer.subscription.updated", after, {"items": before["items"]})
        return after

    def cancel_subscription(self, sub_id: str) -> Obj:
        with self.lock:
            before = self.objects["subscription"][sub_id]
            now = self.now()
            after = {**before, "status": "canceled", "canceled_at": now, "ended_at": now}
            self._put("subscription", after)
        self.emit("customer.subscription.deleted", after)
        return after

    # -- invoices --------------------------------------------------------------------------

    def create_invoice(
        self,
        customer_id: str,
        *,
        subscription_id: str | None = None,
        status: str = "paid",
        collection_method: str = "charge_automatically",
        due_date: int | None = None,
        attempt_count: int = 0,
        extra_lines: int = 0,
        created: int | None = None,
        emit: bool = True,
    ) -> Obj:
        """An invoice for the subscription's current period (or a one-off of extra lines).

        ``extra_lines`` adds that many small one-off lines, to exceed Stripe's 10 embedded
        lines. Events follow the invoice through draft, open and its final ``status``.
        """
        with self.lock:
            invoice_id = self.new_id("in")
            lines: list[Obj] = []
            start = end = self._stamp(created)
            sub = self.objects["subscription"].get(subscription_id or "")
            if sub is not None:
                for item in self.items[sub["id"]]:
                    start, end = item["current_period_start"], item["current_period_end"]
                    lines.append(self._line(invoice_id, item, sub["id"]))
            for n in range(extra_lines):
                lines.append(self._one_off_line(invoice_id, n, start, end))
            total = sum(int(line["amount"]) for line in lines)
            customer = self.objects["customer"][customer_id]
            draft = o.build(
                self.templates,
                "invoice",
                id=invoice_id,
                customer=customer_id,
                customer_email=customer.get("email"),
                customer_name=customer.get("name"),
                created=self._stamp(created),
                currency="usd",
                collection_method=collection_method,
                billing_reason="subscription_cycle" if sub is not None else "manual",
                due_date=due_date,
                period_start=start,
                period_end=end,
                parent=o.subscription_parent(sub["id"]) if sub is not None else None,
                status="draft",
                subtotal=total,
                subtotal_excluding_tax=total,
                total=total,
                total_excluding_tax=total,
                amount_due=total,
                amount_paid=0,
                amount_remaining=total,
                amount_overpaid=0,
                amount_shipping=0,
                attempt_count=0,
                attempted=False,
                number=None,
                livemode=False,
                starting_balance=0,
                ending_balance=None,
                effective_at=None,
                next_payment_attempt=None,
                webhooks_delivered_at=None,
                from_invoice=None,
                last_finalization_error=None,
                latest_revision=None,
                shipping_cost=None,
                shipping_details=None,
                status_transitions={
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
            )
            draft.pop("subscription", None)  # pre-dahlia key some templates still carry
            self.lines[invoice_id] = lines
            draft["lines"] = o.list_envelope(lines, f"/v1/invoices/{invoice_id}/lines")
            self._put("invoice", draft)
        if emit:
            self.emit("invoice.created", draft)
        if status != "draft":
            self.set_invoice_status(invoice_id, "open", emit=emit, attempt_count=attempt_count)
        if status not in ("draft", "open"):
            self.set_invoice_status(invoice_id, status, emit=emit)
        return self.objects["invoice"][invoice_id]

    def _line(self, invoice_id: str, item: Obj, sub_id: str) -> Obj:
        price = item["price"]
        amount = int(price["unit_amount"] or 0) * int(item["quantity"])
        return o.build(
            self.templates,
            "line_item",
            id=self.new_id("il"),
            amount=amount,
            subtotal=amount,
            currency=price["currency"],
            description=f"{item['quantity']} x {price['product']} (at {price['unit_amount']})",
            invoice=invoice_id,
            period={"start": item["current_period_start"], "end": item["current_period_end"]},
            quantity=item["quantity"],
            quantity_decimal=str(item["quantity"]),
            parent=o.line_parent(sub_id, item["id"]),
            pricing=o.line_pricing(price),
            subscription=sub_id,
            discount_amounts=[],
            discounts=[],
            metadata={},
            livemode=False,
            pretax_credit_amounts=[],
            taxes=[],
        )

    def _one_off_line(self, invoice_id: str, n: int, start: int, end: int) -> Obj:
        return o.build(
            self.templates,
            "line_item",
            id=self.new_id("il"),
            amount=100 + n,
            subtotal=100 + n,
            currency="usd",
            description=f"one-off charge {n + 1}",
            invoice=invoice_id,
            period={"start": start, "end": end},
            quantity=1,
            quantity_decimal="1",
            parent=None,
            pricing=None,
            subscription=None,
            discount_amounts=[],
            discounts=[],
            metadata={},
            livemode=False,
            pretax_credit_amounts=[],
            taxes=[],
        )

    def set_invoice_status(
        self, invoice_id: str, status: str, *, emit: bool = True, attempt_count: int | None = None
    ) -> Obj:
        """Move an invoice to open, paid, uncollectible or void (emitting Stripe's event)."""
        with self.lock:
            before = self.objects["invoice"][invoice_id]
            now = self.now()
            after = {**before, "status": status}
            transitions = dict(before["status_transitions"])
            if status == "open":
                transitions["finalized_at"] = now
                after["number"] = f"LOCAL-{invoice_id[-6:]}"
                after["effective_at"] = now
            elif status == "paid":
                transitions["paid_at"] = now
                after.update(amount_paid=before["amount_due"], amount_remaining=0, attempted=True)
                after["attempt_count"] = max(1, int(before["attempt_count"]))
                after["next_payment_attempt"] = None
            elif status == "uncollectible":
                transitions["marked_uncollectible_at"] = now
            elif status == "void":
                transitions["voided_at"] = now
            if attempt_count:
                after.update(attempt_count=attempt_count, attempted=True)
            after["status_transitions"] = transitions
            self._put("invoice", after)
        if emit:
            self.emit(INVOICE_EVENT_FOR_STATUS[status], after, {"status": before["status"]})
        return after

    def fail_invoice_payment(self, invoice_id: str) -> Obj:
        """A failed automatic payment of an open invoice (invoice.payment_failed)."""
        with self.lock:
            before = self.objects["invoice"][invoice_id]
            attempts = int(before["attempt_count"]) + 1
            after = {
                **before,
                "attempt_count": attempts,
                "attempted": True,
                "next_payment_attempt": self.now() + 3 * 86_400,
            }
            self._put("invoice", after)
        self.emit("invoice.payment_failed", after, {"attempt_count": before["attempt_count"]})
        return after

    def delete_invoice(self, invoice_id: str) -> None:
        """Delete a draft invoice (invoice.deleted); Stripe lists it no more."""
        with self.lock:
            invoice = self.objects["invoice"][invoice_id]
            if invoice["status"] != "draft":
                raise ValueError("Stripe deletes draft invoices only")
            self.objects["invoice"][invoice_id] = {**invoice, "deleted": True}
        self.emit("invoice.deleted", invoice)

    # -- billing portal --------------------------------------------------------------------

    def create_portal_session(self, customer_id: str, return_url: str | None) -> Obj:
        session_id = self.new_id("bps")
        return o.build(
            self.templates,
            "billing_portal.session",
            id=session_id,
            configuration="bpc_local",
            created=self.now(),
            customer=customer_id,
            flow=None,
            livemode=False,
            locale=None,
            on_behalf_of=None,
            return_url=return_url,
            url=f"{self.url}/p/session/{session_id}",
        )

    # -- webhooks --------------------------------------------------------------------------

    def webhook_delivery(
        self, event_id: str, secret: str, *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """Body and headers of the webhook delivery of an event, signed as Stripe signs it."""
        payload = json.dumps(self.checked("event", self.event_by_id[event_id])).encode()
        t = int(time.time()) if timestamp is None else timestamp
        return payload, {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign_payload(payload, secret, t),
        }
