"""POST /api/v1/stripe/webhook: Stripe's event deliveries, verified, applied once.

The signature is checked with ``stripe.Webhook.construct_event`` against
MH_STRIPE_WEBHOOK_SECRET; a bad signature, or a timestamp older than the tolerance (a
replayed delivery), is answered 400 and nothing is applied. A verified event whose id was
applied before (by an earlier delivery or by the scheduled sync) is answered 200 and not
applied again. Otherwise the event goes through the same upsert path as the sync
(apply.Applier.events), versioned by ``event.created``, so deliveries that arrive out of
order never leave an older state on top. Allowances and the reconciliation follow on the
scheduler's next tick (``on_applied``).

Stripe retries any answer other than 2xx, so a failure to store answers 500.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from billing_sync.apply import Applier
from billing_sync.metrics import BillingMetrics
from billing_sync.source import StripeSource
from billing_sync.state import applied_event_ids, record_applied
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger
from meterhouse.service.context import problem
from meterhouse.service.limits import BodyTooLargeError, read_limited
from meterhouse.store.base import Store

log = get_logger(__name__)

WEBHOOK_PATH = "/api/v1/stripe/webhook"
MAX_BODY_BYTES = 1_000_000  # Stripe's event payloads are far smaller


@dataclass(frozen=True)
class Outcome:
    status: int
    outcome: str  # a metrics label, see metrics.WEBHOOK_OUTCOMES
    detail: str
    event_id: str = ""


class WebhookReceiver:
    """Verifies and applies deliveries; usable without HTTP (``receive``) for tests."""

    def __init__(
        self,
        store: Store,
        *,
        secret: str,
        tolerance_seconds: int,
        source: StripeSource | None,
        metrics: BillingMetrics | None = None,
        on_applied: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.secret = secret
        self.tolerance = tolerance_seconds
        self.applier = Applier(store, source)
        self.metrics = metrics
        self.on_applied = on_applied
        # One delivery at a time: two deliveries of one event must not both apply it.
        self._lock = threading.Lock()

    def receive(self, payload: bytes, signature: str | None) -> Outcome:
        outcome = self._receive(payload, signature)
        if self.metrics is not None:
            self.metrics.webhook(outcome.outcome)
        return outcome

    def _receive(self, payload: bytes, signature: str | None) -> Outcome:
        if not self.secret:
            return Outcome(503, "not_configured", "MH_STRIPE_WEBHOOK_SECRET is not set")
        try:
            # The signature only: building Stripe's event object from a signed body that is
            # not an event (a list, a number) raises errors of every kind; the checks
            # below say what is wrong with it instead.
            stripe.WebhookSignature.verify_header(payload, signature, self.secret, self.tolerance)
        except stripe.SignatureVerificationError as exc:
            log.warning("stripe webhook refused", reason=str(exc))
            return Outcome(400, "bad_signature", f"signature not accepted: {exc}")
        except ValueError as exc:
            return Outcome(400, "bad_request", f"body is not a Stripe event: {exc}")
        try:
            event: Any = json.loads(payload)
        except ValueError as exc:
            return Outcome(400, "bad_request", f"body is not JSON: {exc}")
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            return Outcome(400, "bad_request", "body is not a Stripe event (no id or type)")
        event_id = str(event["id"])
        try:
            with self._lock:
                if applied_event_ids(self.store, [event_id]):
                    return Outcome(200, "duplicate", "event applied before", event_id)
                self.applier.events([event])
                record_applied(self.store, [event], "webhook")
        except MeterhouseError as exc:
            log.error("stripe webhook not applied", event_id=event_id, error=str(exc))
            return Outcome(500, "error", f"event not stored, retry later: {exc}", event_id)
        if self.on_applied is not None:
            self.on_applied()
        return Outcome(200, "applied", "event applied", event_id)

    async def endpoint(self, request: Request) -> Response:
        # Counted while it streams in: neither a false Content-Length nor a chunked body
        # gets more than MAX_BODY_BYTES into memory.
        try:
            payload = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLargeError:
            return problem(413, "Payload Too Large", f"body over {MAX_BODY_BYTES} bytes")
        signature = request.headers.get("stripe-signature")
        outcome = await asyncio.to_thread(self.receive, payload, signature)
        if outcome.status >= 400:
            title = {400: "Bad Request", 500: "Internal Server Error", 503: "Not Configured"}
            return problem(outcome.status, title.get(outcome.status, "Error"), outcome.detail)
        return JSONResponse(
            {"status": outcome.outcome, "event": outcome.event_id}, status_code=outcome.status
        )
