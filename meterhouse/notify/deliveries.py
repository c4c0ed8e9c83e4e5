"""Deliveries: one alert to one channel, attempted until sent or given up, each attempt kept.

The receiver endpoint answers Alertmanager at once and hands the deliveries to the
:class:`Dispatcher`, whose worker sends them on a small thread pool (a slow channel does
not hold up the others). A failed attempt is retried after MH_NOTIFY_RETRY_BASE_SECONDS,
doubling each time (at most an hour), until MH_NOTIFY_MAX_ATTEMPTS; then the delivery is
``dead`` and its channel shows as dead until a later delivery to it succeeds. Every
attempt is a row of ``notifications``. Retries waiting when the service stops are picked
up again from that table when it starts (:meth:`Dispatcher.resume`).

The delivery id is derived from the channel and the alert's state (fingerprint, status,
start), so it is the same on every retry and when Alertmanager re-sends the same state:
receivers deduplicate on it.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from meterhouse.access.tenants import now_utc
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger
from meterhouse.notify.channels import Channel, list_channels
from meterhouse.notify.messages import Alert, render
from meterhouse.notify.senders import Outcome, send
from meterhouse.settings import Settings
from meterhouse.store.base import Store

log = get_logger(__name__)

MAX_BACKOFF_SECONDS: Final = 3600.0
SENDERS: Final = 4
RESUME_WINDOW: Final = timedelta(days=1)


def delivery_id(channel: Channel, alert: Alert) -> str:
    key = "|".join((channel.channel_id, alert.fingerprint, alert.status, alert.starts_at))
    return "dlv_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Delivery:
    channel: Channel
    alert: Alert
    attempt: int = 1

    @property
    def id(self) -> str:
        return delivery_id(self.channel, self.alert)


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt``."""
    return float(min(settings.notify_retry_base_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))


def _payload(alert: Alert) -> str:
    return json.dumps(
        {
            "status": alert.status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": alert.starts_at,
            "endsAt": alert.ends_at,
            "fingerprint": alert.fingerprint,
        },
        sort_keys=True,
    )


def record(store: Store, delivery: Delivery, outcome: Outcome, final: str) -> None:
    alert = delivery.alert
    store.insert(
        "notifications",
        {
            "at": [now_utc()],
            "account_id": [delivery.channel.account_id],
            "alert": [alert.name],
            "severity": [alert.severity],
            "status": [alert.status],
            "fingerprint": [alert.fingerprint],
            "channel_id": [delivery.channel.channel_id],
            "channel_type": [delivery.channel.type],
            "delivery_id": [delivery.id],
            "attempt": [delivery.attempt],
            "outcome": [final],
            "response_code": [outcome.code],
            "error": [outcome.error],
            "summary": [alert.annotations.get("summary", alert.name)[:500]],
            "payload": [_payload(alert)],
        },
    )


def attempt(
    store: Store, settings: Settings, delivery: Delivery, *, retry: bool = True
) -> tuple[Outcome, str]:
    """Send once and record it; returns the outcome and sent | retrying | dead (or failed,
    for a one-off send that is not retried)."""
    message = render(
        delivery.alert, grafana_url=settings.grafana_url, docs_base_url=settings.docs_base_url
    )
    outcome = send(settings, delivery.channel, delivery.alert, message, delivery.id)
    if outcome.ok:
        final = "sent"
    elif not retry:
        final = "failed"
    else:
        final = "dead" if delivery.attempt >= settings.notify_max_attempts else "retrying"
    try:
        record(store, delivery, outcome, final)
    except MeterhouseError as exc:  # the message went out (or not) either way
        log.warning("notification attempt not recorded", error=str(exc), delivery=delivery.id)
    log.info(
        "notification attempt",
        delivery=delivery.id,
        account=delivery.channel.account_id,
        channel=delivery.channel.channel_id,
        alert=delivery.alert.name,
        status=delivery.alert.status,
        attempt=delivery.attempt,
        outcome=final,
        code=outcome.code,
        error=outcome.error,
    )
    return outcome, final


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    delivery: Delivery = field(compare=False)


class Dispatcher:
    """Sends deliveries in the background, retrying failures with backoff."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        on_attempt: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        # Told (channel type, outcome) after each attempt: the service counts them.
        self.on_attempt = on_attempt
        self._queue: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="notify-send")
        self._thread = threading.Thread(target=self._run, name="notify-dispatch", daemon=True)

    def submit(self, deliveries: Iterable[Delivery], delay: float = 0.0) -> int:
        count = 0
        with self._cond:
            for delivery in deliveries:
                due = _Due(self.clock() + delay, next(self._seq), delivery)
                heapq.heappush(self._queue, due)
                count += 1
            self._cond.notify()
        return count

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=15)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0].at > self.clock()):
                    wait = self._queue[0].at - self.clock() if self._queue else None
                    self._cond.wait(timeout=wait)
                if self._stopping:
                    return
                due = heapq.heappop(self._queue)
            self._pool.submit(self._send, due.delivery)

    def _send(self, delivery: Delivery) -> None:
        try:
            _, final = attempt(self.store, self.settings, delivery)
        except Exception:  # a bad delivery must not kill the sender threads
            log.exception("notification attempt crashed", delivery=delivery.id)
            return
        if self.on_attempt is not None:
            self.on_attempt(delivery.channel.type, final)
        if final == "retrying":
            retry = Delivery(delivery.channel, delivery.alert, delivery.attempt + 1)
            self.submit([retry], backoff(self.settings, delivery.attempt))

    def resume(self) -> int:
        """Queue again the deliveries whose latest attempt is waiting for a retry."""
        rows = self.store.query(
            "SELECT account_id, channel_id, argMax(attempt, at) AS last_try, "
            "argMax(outcome, at) AS last_outcome, argMax(payload, at) AS last_payload "
            "FROM notifications WHERE at >= {since:DateTime64(3)} GROUP BY account_id, "
            "channel_id, delivery_id HAVING last_outcome = 'retrying'",
            {"since": now_utc() - RESUME_WINDOW},
        ).dicts()
        channels: dict[str, dict[str, Channel]] = {}
        again = []
        for row in rows:
            account = str(row["account_id"])
            if account not in channels:
                channels[account] = {c.channel_id: c for c in list_channels(self.store, account)}
            channel = channels[account].get(str(row["channel_id"]))
            if channel is None or not row["last_payload"]:
                continue  # the channel was removed meanwhile
            alert = Alert.from_json(json.loads(str(row["last_payload"])))
            again.append(Delivery(channel, alert, int(row["last_try"]) + 1))
        return self.submit(again)


def test_channel(store: Store, settings: Settings, channel: Channel) -> Outcome:
    """Send a test notification to the channel now (once, recorded, not retried)."""
    now = now_utc()
    who = f"account {channel.account_id}" if channel.account_id else "the operators"
    alert = Alert(
        status="firing",
        labels={
            "alertname": "MeterhouseNotificationTest",
            "severity": "info",
            **({"account": channel.account_id} if channel.account_id else {}),
        },
        annotations={
            "summary": f"Test notification for {who}",
            "description": f"Sent by `meterhouse notify channels test` to {channel.channel_id}; "
            "no action needed.",
        },
        starts_at=now.isoformat(),
        fingerprint=f"test-{now.timestamp():.3f}",
    )
    outcome, _ = attempt(store, settings, Delivery(channel, alert), retry=False)
    return outcome


def delivery_log(
    store: Store, account_id: str | None, *, limit: int = 50, alert: str = ""
) -> list[dict[str, Any]]:
    """Attempts, newest first, of one account ('' = operators) or of all (None)."""
    return list(
        store.query(
            "SELECT at, account_id, alert, severity, status, channel_id, channel_type, "
            "attempt, outcome, response_code, error, delivery_id FROM notifications "
            "WHERE ({all:UInt8} = 1 OR account_id = {a:String}) "
            "AND ({alert:String} = '' OR alert = {alert:String}) "
            "ORDER BY at DESC LIMIT {n:UInt32}",
            {"all": int(account_id is None), "a": account_id or "", "alert": alert, "n": limit},
        ).dicts()
    )


def channel_health(store: Store, account_id: str) -> dict[str, dict[str, Any]]:
    """Per channel: the outcome and time of its latest attempt (dead = given up)."""
    rows = store.query(
        "SELECT channel_id, argMax(outcome, at) AS last_outcome, max(at) AS last_attempt, "
        "argMax(error, at) AS last_error FROM notifications WHERE account_id = {a:String} "
        "GROUP BY channel_id",
        {"a": account_id},
    ).dicts()
    return {str(row["channel_id"]): row for row in rows}
