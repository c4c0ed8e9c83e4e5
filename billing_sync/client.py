"""The Stripe client the billing sync talks through, and its errors in our words.

Every request is pinned to API version 2026-07-29.dahlia, whose shapes the mirror parses
(current periods on subscription items, an invoice's subscription under
``parent.subscription_details``, invoice lines with ``pricing`` and ``parent``).

Retries: the library already retries connection errors, 409 and 5xx with exponential
backoff (``max_network_retries``) and obeys the ``Stripe-Should-Retry`` header, but it
neither retries a 429 nor reads ``Retry-After``. ``RetryAfterRequestsClient`` adds both,
so a rate-limited page is waited for and fetched again, inside auto-pagination too.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import stripe

from meterhouse.errors import MeterhouseError
from meterhouse.settings import Settings

PINNED_API_VERSION: Final = "2026-07-29.dahlia"
REQUEST_TIMEOUT_SECONDS: Final = 30.0
MAX_RETRY_AFTER_SECONDS: Final = 30.0


class BillingError(MeterhouseError):
    """The billing sync cannot do what was asked; the message says why and what to do."""


class StripeConfigError(BillingError):
    """A Stripe setting is missing."""


class StripeAuthError(BillingError):
    """Stripe refused the API key: retrying cannot help until the key is fixed."""


class StripeUnavailableError(BillingError):
    """Stripe could not be reached or kept failing after every retry; a later pass may work."""


def _retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryAfterRequestsClient(stripe.RequestsClient):
    """The library's requests client, retrying 429 responses after their Retry-After."""

    def _should_retry(
        self,
        response: Any,
        api_connection_error: Any,
        num_retries: int,
        max_network_retries: int | None,
    ) -> bool:
        self._thread_local.retry_after = None
        if response is not None and response[1] == 429:
            headers = response[2]
            if num_retries >= (max_network_retries or 0):
                return False
            if headers is not None and headers.get("stripe-should-retry") == "false":
                return False
            self._thread_local.retry_after = _retry_after_seconds(headers)
            return True
        return bool(
            super()._should_retry(response, api_connection_error, num_retries, max_network_retries)
        )

    def _sleep_time_seconds(self, num_retries: int) -> float:
        backoff = float(super()._sleep_time_seconds(num_retries))
        wanted = getattr(self._thread_local, "retry_after", None)
        if wanted is None:
            return backoff
        return min(max(backoff, float(wanted)), MAX_RETRY_AFTER_SECONDS)


def api_key_of(settings: Settings) -> str:
    key = settings.stripe_api_key.get_secret_value().strip()
    if not key:
        raise StripeConfigError(
            "MH_STRIPE_API_KEY is not set: give the billing sync a Stripe secret or restricted "
            "key (read access to customers, products, prices, subscriptions, invoices, events; "
            "write access to billing portal sessions)"
        )
    return key


def new_client(api_key: str, api_base: str, max_network_retries: int) -> stripe.StripeClient:
    """A client pinned to PINNED_API_VERSION, retrying as described above."""
    # The library logs every request at INFO (thousands per full pass); keep its warnings,
    # and its request lines when meterhouse itself runs at DEBUG.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("stripe").setLevel(logging.WARNING)
    return stripe.StripeClient(
        api_key,
        stripe_version=PINNED_API_VERSION,
        base_addresses={"api": api_base.rstrip("/")},
        max_network_retries=max_network_retries,
        http_client=RetryAfterRequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )


def make_client(settings: Settings) -> stripe.StripeClient:
    """A client for the configured key and API base (StripeConfigError without a key)."""
    return new_client(
        api_key_of(settings), settings.stripe_api_base, settings.stripe_max_network_retries
    )


def describe(exc: stripe.StripeError, api_base: str) -> BillingError:
    """Our error for a Stripe library error, naming what went wrong and what to do."""
    status = exc.http_status
    detail = exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.AuthenticationError):
        return StripeAuthError(
            f"Stripe rejected MH_STRIPE_API_KEY (HTTP {status}): {detail}. Set a valid key "
            "(Dashboard > Developers > API keys) and run again"
        )
    if isinstance(exc, stripe.PermissionError):
        return StripeAuthError(
            f"MH_STRIPE_API_KEY may not do this (HTTP {status}): {detail}. Give the restricted "
            "key read access to billing objects and events"
        )
    if isinstance(exc, stripe.RateLimitError):
        return StripeUnavailableError(
            f"Stripe kept rate-limiting the sync after every retry: {detail}"
        )
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailableError(f"cannot reach Stripe at {api_base}: {detail}")
    if isinstance(exc, stripe.APIError) or (status is not None and status >= 500):
        return StripeUnavailableError(f"Stripe failed (HTTP {status}) after retries: {detail}")
    return BillingError(f"Stripe refused a request (HTTP {status}): {detail}")


@contextmanager
def stripe_errors(api_base: str) -> Iterator[None]:
    """Turn the library's exceptions into ``BillingError``s for the caller."""
    try:
        yield
    except stripe.StripeError as exc:
        raise describe(exc, api_base) from exc
