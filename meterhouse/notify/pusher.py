"""Alerts meterhouse evaluates on ClickHouse itself, pushed to Alertmanager's v2 API.

Some alerts need per-account figures that do not belong in Prometheus (which job of which
account failed, which invoice is unpaid: their ids would make series unbounded), so
`meterhouse run` evaluates them on the store every MH_ALERTS_PUSH_INTERVAL_SECONDS and
posts them to Alertmanager the way Prometheus does. From there they are ordinary alerts:
Alertmanager groups, silences, inhibits and routes them to meterhouse's receiver.

Each push gives the alerts an end three intervals ahead, so an alert that stops being
pushed resolves by itself even if meterhouse stops; one that clears is resolved at once
by a push with its end set to now. The evaluators are job_alerts.py and billing_alerts.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import requests

from meterhouse.access.tenants import now_utc
from meterhouse.errors import MeterhouseError
from meterhouse.logs import get_logger
from meterhouse.settings import Settings

log = get_logger(__name__)

RUNBOOK: Final = "docs/alerts.md#"


@dataclass(frozen=True)
class PushedAlert:
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))


Evaluator = Callable[[datetime], list[PushedAlert]]


def _wire(alert: PushedAlert, ends: datetime, generator: str) -> dict[str, Any]:
    return {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "endsAt": ends.isoformat().replace("+00:00", "Z"),
        "generatorURL": generator,
    }


class AlertPusher:
    """Runs the evaluators and posts their alerts to Alertmanager; one push at a time."""

    def __init__(self, settings: Settings, evaluators: Sequence[Evaluator]) -> None:
        self.url = settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        self.interval = settings.alerts_push_interval_seconds
        self.evaluators = list(evaluators)
        self.generator = settings.grafana_url.rstrip("/") + "/d/meterhouse-overview"
        self._active: dict[tuple[tuple[str, str], ...], PushedAlert] = {}
        self._lock = threading.Lock()

    def evaluate(self, now: datetime) -> list[PushedAlert]:
        return [alert for evaluate in self.evaluators for alert in evaluate(now)]

    def push_once(self) -> int:
        """Push the firing alerts (and resolve the cleared ones); the number firing, or -1."""
        with self._lock:
            now = now_utc()
            try:
                firing = {a.key: a for a in self.evaluate(now)}
            except MeterhouseError as exc:
                log.warning("pushed alerts not evaluated", error=str(exc))
                return -1
            ends = now + timedelta(seconds=3 * self.interval)
            body = [_wire(a, ends, self.generator) for a in firing.values()]
            body += [
                _wire(a, now, self.generator)
                for key, a in self._active.items()
                if key not in firing
            ]
            if body:
                try:
                    answer = requests.post(self.url, json=body, timeout=10)
                    answer.raise_for_status()
                except requests.RequestException as exc:
                    log.warning("alerts not pushed to Alertmanager", url=self.url, error=str(exc))
                    return -1
            self._active = firing
            return len(firing)
