"""Signed webhook deliveries, the way Stripe and Svix sign theirs.

Each POST carries ``Meterhouse-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256 of ``"<t>.<raw body>"`` under the channel's secret, and
``Meterhouse-Delivery-Id``, the same on every retry of one delivery, so a receiver can
drop duplicates. Receivers check the signature with :func:`verify` (or its few lines in
any language) and refuse timestamps older than a tolerance, which stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "Meterhouse-Signature"
DELIVERY_HEADER: Final = "Meterhouse-Delivery-Id"
DEFAULT_TOLERANCE_SECONDS: Final = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body``, signed now unless ``timestamp`` is given."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={signature(secret, at, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within the tolerance."""
    parts = dict(item.partition("=")[::2] for item in header.split(",") if "=" in item)
    try:
        at = int(parts.get("t", ""))
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - at) > tolerance_seconds:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, at, body))
