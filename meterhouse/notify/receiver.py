"""Alertmanager's webhook notification -> the deliveries it asks for.

Each alert goes to the channels of the account its ``account`` label names, and only
those; an alert without an account label goes to the operators' channels. A channel
takes an alert when the severity reaches its floor and the alert's kind is one it wants.
The body is Alertmanager's webhook format, version 4; anything else is refused with a
reason (the endpoint answers 400).
"""

from __future__ import annotations

import json
from typing import Any, Final

from meterhouse.notify.channels import OPERATORS, Channel, list_channels
from meterhouse.notify.deliveries import Delivery
from meterhouse.notify.errors import NotifyError
from meterhouse.notify.messages import Alert
from meterhouse.store.base import Store

MAX_BODY_BYTES: Final = 2 * 1024 * 1024
MAX_ALERTS: Final = 1000


def parse_notification(body: bytes) -> list[Alert]:
    if len(body) > MAX_BODY_BYTES:
        raise NotifyError(f"notification larger than {MAX_BODY_BYTES} bytes")
    try:
        payload: Any = json.loads(body)
    except ValueError:
        raise NotifyError("body must be Alertmanager's webhook JSON") from None
    if not isinstance(payload, dict) or payload.get("version") != "4":
        raise NotifyError('body must be Alertmanager\'s webhook JSON, "version": "4"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or len(alerts) > MAX_ALERTS:
        raise NotifyError(f"alerts must be a list of at most {MAX_ALERTS}")
    return [Alert.from_json(raw) for raw in alerts]


def plan_deliveries(store: Store, alerts: list[Alert]) -> list[Delivery]:
    """Every (channel, alert) pair to send; channels read once per account."""
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
    return planned
