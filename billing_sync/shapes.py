"""Stripe objects (API version 2026-07-29.dahlia) as rows of the mirror tables.

Pure functions: a Stripe object as a plain dict in, rows out. ``version`` is the row's
ReplacingMergeTree version in milliseconds: the event's ``created`` for an event, the
snapshot time for a full pass, so an older view of an object never replaces a newer one.

A few pre-dahlia keys are read as a fallback (``invoice.subscription``, a line's
``price``, a subscription's own period) so an event rendered at an older account API
version still lands in the right columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from meterhouse.logs import get_logger

log = get_logger(__name__)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
PLAN_KEY: Final = "meterhouse_plan"
CREDITS_KEY: Final = "meterhouse_credits"
ACCOUNT_KEY: Final = "meterhouse_account"
_MAX_CREDITS: Final = Decimal("1e15")

Row = dict[str, Any]


def to_time(value: Any) -> datetime | None:
    """A Stripe Unix timestamp (seconds) as an aware UTC datetime; None stays None."""
    if value is None or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def ref_id(value: Any) -> str:
    """The id of a field that is either an id or an expanded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return ""


def raw_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def metadata(obj: dict[str, Any]) -> dict[str, str]:
    found = obj.get("metadata")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def plan_credits(product: dict[str, Any]) -> Decimal:
    """Credits per period from ``metadata.meterhouse_credits``; 0 (and a warning) if unusable."""
    text = metadata(product).get(CREDITS_KEY, "").strip()
    if not text:
        return Decimal(0)
    try:
        credits = Decimal(text)
    except InvalidOperation:
        credits = Decimal("NaN")
    if not credits.is_finite() or credits < 0 or credits >= _MAX_CREDITS:
        log.warning(
            "product metadata meterhouse_credits is not a credit amount; using 0",
            product=product.get("id"),
            value=text,
        )
        return Decimal(0)
    return credits.quantize(Decimal("1e-12"))


def customer_row(obj: dict[str, Any], version: int) -> Row:
    return {
        "customer_id": str(obj["id"]),
        "email": obj.get("email") or "",
        "name": obj.get("name") or "",
        "account_id": metadata(obj).get(ACCOUNT_KEY, ""),
        "balance": _int(obj.get("balance")),
        "currency": obj.get("currency") or "",
        "created": to_time(obj.get("created")) or EPOCH,
        "deleted": 1 if obj.get("deleted") else 0,
        "raw": raw_json(obj),
        "version": version,
    }


def product_row(obj: dict[str, Any], version: int) -> Row:
    return {
        "product_id": str(obj["id"]),
        "name": obj.get("name") or "",
        "active": 1 if obj.get("active") else 0,
        "plan": metadata(obj).get(PLAN_KEY, "").strip(),
        "credits": plan_credits(obj),
        "deleted": 1 if obj.get("deleted") else 0,
        "raw": raw_json(obj),
        "version": version,
    }


def price_row(obj: dict[str, Any], version: int) -> Row:
    recurring = obj.get("recurring") or {}
    decimal_text = obj.get("unit_amount_decimal")
    return {
        "price_id": str(obj["id"]),
        "product_id": ref_id(obj.get("product")),
        "active": 1 if obj.get("active") else 0,
        "currency": obj.get("currency") or "",
        "unit_amount": obj.get("unit_amount"),
        "unit_amount_decimal": Decimal(str(decimal_text)) if decimal_text is not None else None,
        "recurring_interval": recurring.get("interval") or "",
        "deleted": 1 if obj.get("deleted") else 0,
        "raw": raw_json(obj),
        "version": version,
    }


@dataclass
class Snapshot:
    """A parent row and the child rows it carries, with whether the children are all there."""

    parent: Row
    children: list[Row] = field(default_factory=list)
    children_complete: bool = True


def item_row(item: dict[str, Any], subscription: dict[str, Any], version: int) -> Row:
    price = item.get("price") or {}
    # Dahlia keeps the current period on the item; older versions had it on the subscription.
    start = item.get("current_period_start", subscription.get("current_period_start"))
    end = item.get("current_period_end", subscription.get("current_period_end"))
    quantity = item.get("quantity")
    return {
        "item_id": str(item["id"]),
        "subscription_id": str(subscription["id"]),
        "price_id": ref_id(price),
        "product_id": ref_id(price.get("product")) if isinstance(price, dict) else "",
        "quantity": _int(quantity) if quantity is not None else 1,
        "current_period_start": to_time(start) or EPOCH,
        "current_period_end": to_time(end) or EPOCH,
        "deleted": 1 if item.get("deleted") else 0,
        "raw": raw_json(item),
        "version": version,
    }


def subscription_snapshot(obj: dict[str, Any], version: int) -> Snapshot:
    items = obj.get("items") or {}
    parent = {
        "subscription_id": str(obj["id"]),
        "customer_id": ref_id(obj.get("customer")),
        "status": obj.get("status") or "",
        "cancel_at_period_end": 1 if obj.get("cancel_at_period_end") else 0,
        "created": to_time(obj.get("created")) or EPOCH,
        "canceled_at": to_time(obj.get("canceled_at")),
        "deleted": 0,
        "raw": raw_json(obj),
        "version": version,
    }
    children = [item_row(item, obj, version) for item in items.get("data") or []]
    return Snapshot(parent, children, not items.get("has_more"))


def invoice_subscription_id(obj: dict[str, Any]) -> str:
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") or {}
    found = ref_id(details.get("subscription"))
    return found or ref_id(obj.get("subscription"))  # pre-dahlia fallback


def line_price_id(line: dict[str, Any]) -> str:
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {}
    return ref_id(details.get("price")) or ref_id(line.get("price"))  # pre-dahlia fallback


def line_row(line: dict[str, Any], invoice_id: str, version: int) -> Row:
    period = line.get("period") or {}
    quantity = line.get("quantity")
    return {
        "invoice_id": invoice_id,
        "line_id": str(line["id"]),
        "description": line.get("description") or "",
        "amount": _int(line.get("amount")),
        "currency": line.get("currency") or "",
        "quantity": _int(quantity) if quantity is not None else None,
        "price_id": line_price_id(line),
        "period_start": to_time(period.get("start")) or EPOCH,
        "period_end": to_time(period.get("end")) or EPOCH,
        "deleted": 0,
        "raw": raw_json(line),
        "version": version,
    }


def invoice_snapshot(obj: dict[str, Any], version: int) -> Snapshot:
    invoice_id = str(obj["id"])
    lines = obj.get("lines") or {}
    parent = {
        "invoice_id": invoice_id,
        "customer_id": ref_id(obj.get("customer")),
        "subscription_id": invoice_subscription_id(obj),
        "status": obj.get("status") or "",
        "currency": obj.get("currency") or "",
        "total": _int(obj.get("total")),
        "amount_due": _int(obj.get("amount_due")),
        "amount_paid": _int(obj.get("amount_paid")),
        "amount_remaining": _int(obj.get("amount_remaining")),
        "due_date": to_time(obj.get("due_date")),
        "period_start": to_time(obj.get("period_start")) or EPOCH,
        "period_end": to_time(obj.get("period_end")) or EPOCH,
        "created": to_time(obj.get("created")) or EPOCH,
        "collection_method": obj.get("collection_method") or "",
        "attempt_count": _int(obj.get("attempt_count")),
        "deleted": 1 if obj.get("deleted") else 0,
        "raw": raw_json(obj),
        "version": version,
    }
    children = [line_row(line, invoice_id, version) for line in lines.get("data") or []]
    return Snapshot(parent, children, not lines.get("has_more"))


def balance_transaction_row(obj: dict[str, Any], version: int) -> Row:
    return {
        "transaction_id": str(obj["id"]),
        "customer_id": ref_id(obj.get("customer")),
        "type": obj.get("type") or "",
        "amount": _int(obj.get("amount")),
        "currency": obj.get("currency") or "",
        "created": to_time(obj.get("created")) or EPOCH,
        "raw": raw_json(obj),
        "version": version,
    }
