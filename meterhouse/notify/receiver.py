"""Alertmanager's webhook notification -> the deliveries it asks for.

Each alert goes to the channels of the account its ``account`` label names, and only
those; an alert without an account label goes to the operators' channels. A channel
takes an alert when the severity reaches its floor and the alert's kind is one it wants.
The body is Alertmanager's webhook format, version 4 (or Grafana's, version 1); anything
else is refused with a reason (the endpoint answers 400).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Final

from meterhouse.access.tenants import now_utc
from meterhouse.notify.channels import OPERATORS, Channel, list_channels
from meterhouse.notify.deliveries import Delivery
from meterhouse.notify.errors import NotifyError
from meterhouse.notify.messages import Alert
from meterhouse.store.base import Store

MAX_BODY_BYTES: Final = 2 * 1024 * 1024
MAX_ALERTS: Final = 1000
RESEND_AFTER: Final = timedelta(hours=20)


def parse_notification(body: bytes) -> list[Alert]:
    if len(body) > MAX_BODY_BYTES:
        raise NotifyError(f"notification larger than {MAX_BODY_BYTES} bytes")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        raise NotifyError("body must be Alertmanager's webhook JSON") from None
    # Alertmanager sends version 4; Grafana's webhook contact point version 1, with the
    # same alerts.
    if not isinstance(payload, dict) or payload.get("version") not in ("4", "1"):
        raise NotifyError('body must be Alertmanager\'s webhook JSON, "version": "4"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or len(alerts) > MAX_ALERTS:
        raise NotifyError(f"alerts must be a list of at most {MAX_ALERTS}")
    return [Alert.from_json(raw) for raw in alerts]


def recently_delivered(store: Store, ids: list[str]) -> set[str]:
    """Delivery ids attempted within :data:`RESEND_AFTER` (sent, or still being retried)."""
    if not ids:
        return set()
    rows = store.query(
        "SELECT DISTINCT delivery_id FROM notifications WHERE at >= {since:DateTime64(3)} "
        "AND delivery_id IN {ids:Array(String)}",
        {"since": now_utc() - RESEND_AFTER, "ids": ids},
    ).rows
    return {str(row[0]) for row in rows}


def plan_deliveries(store: Store, alerts: list[Alert]) -> list[Delivery]:
    """Every (channel, alert) pair to send, less those delivered lately; channels are read
    once per account.

    Alertmanager re-sends every alert of a group whenever the group changes (another job of
    the account fails, say); the same alert state to the same channel has the same delivery
    id, so those repeats are dropped here. A reminder after Alertmanager's repeat interval
    (a day for account alerts) is longer ago than RESEND_AFTER and goes out.
    """
    channels: dict[str, list[Channel]] = {}
    planned = []
    for alert in alerts:
        owner = alert.account or OPERATORS
        if owner not in channels:
            channels[owner] = list_channels(store, owner)
        planned += [
            Delivery(channel, alert)
            for channel in channels[owner]
            if channel.wants(alert.name, alert.severity)
        ]
    seen = recently_delivered(store, [d.id for d in planned])
    return [d for d in planned if d.id not in seen]
