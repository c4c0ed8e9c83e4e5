"""What a notification says: one alert of an Alertmanager notification, made readable.

Every message names the account, what crossed (the alert's summary), the figure and the
threshold (the rule's ``figure`` and ``threshold`` annotations), and links to the
dashboard that shows it (MH_GRAFANA_URL) and to the runbook (MH_DOCS_BASE_URL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from meterhouse.notify.channels import kind_of
from meterhouse.notify.errors import NotifyError

# Which dashboard shows an alert, by its kind (uids of grafana/dashboards/).
_DASHBOARD: Final = {
    "budget": "meterhouse-overview",
    "balance": "meterhouse-overview",
    "jobs": "meterhouse-jobs",
    "billing": "meterhouse-billing",
    "service": "meterhouse-pipeline-health",
}
MAX_TEXT: Final = 2000


def _text(value: Any, limit: int = 500) -> str:
    return str(value)[:limit] if isinstance(value, str | int | float) else ""


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager's webhook (version 4) describes it."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = ""
    ends_at: str = ""
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Any) -> Alert:
        if not isinstance(raw, dict):
            raise NotifyError("each alert must be a JSON object")
        labels, annotations = raw.get("labels"), raw.get("annotations", {})
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            raise NotifyError("an alert's labels and annotations must be objects")
        status = raw.get("status")
        if status not in ("firing", "resolved"):
            raise NotifyError("an alert's status must be firing or resolved")
        return cls(
            status=str(status),
            labels={_text(k, 100): _text(v) for k, v in list(labels.items())[:50]},
            annotations={_text(k, 100): _text(v, 2000) for k, v in list(annotations.items())[:30]},
            starts_at=_text(raw.get("startsAt", ""), 40),
            ends_at=_text(raw.get("endsAt", ""), 40),
            fingerprint=_text(raw.get("fingerprint", ""), 64),
        )

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed alert")

    @property
    def account(self) -> str:
        return self.labels.get("account", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "critical")


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    dashboard_url: str
    runbook_url: str


def dashboard_link(grafana_url: str, alert: Alert) -> str:
    uid = _DASHBOARD[kind_of(alert.name)]
    params = {"var-account": alert.account} if alert.account else {}
    query = f"?{urlencode(params)}" if params else ""
    return f"{grafana_url.rstrip('/')}/d/{quote(uid)}{query}"


def runbook_link(docs_base_url: str, alert: Alert) -> str:
    path = alert.annotations.get("runbook_url", "")
    if not path or path.startswith(("http://", "https://")) or not docs_base_url:
        return path
    return docs_base_url.rstrip("/") + "/" + path.lstrip("/")


def render(alert: Alert, *, grafana_url: str, docs_base_url: str) -> Message:
    who = f"account {alert.account}" if alert.account else "the platform"
    state = "RESOLVED" if alert.status == "resolved" else f"FIRING {alert.severity}"
    summary = alert.annotations.get("summary") or alert.name
    title = f"[meterhouse {state}] {who}: {summary}"
    lines = [
        "Resolved: this is no longer the case." if alert.status == "resolved" else summary,
        alert.annotations.get("description", ""),
        "",
        f"Account: {alert.account or '(platform)'}",
        f"Alert: {alert.name} ({alert.severity})",
    ]
    for key in ("budget", "job", "run", "kind", "invoice"):
        if alert.labels.get(key):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {alert.labels[key]}")
    if alert.annotations.get("figure"):
        lines.append(f"Figure: {alert.annotations['figure']}")
    if alert.annotations.get("threshold"):
        lines.append(f"Threshold: {alert.annotations['threshold']}")
    lines.append(f"Since: {alert.starts_at}")
    dashboard = dashboard_link(grafana_url, alert)
    runbook = runbook_link(docs_base_url, alert)
    lines.append(f"Dashboard: {dashboard}")
    if runbook:
        lines.append(f"Runbook: {runbook}")
    return Message(title[:300], "\n".join(lines)[:MAX_TEXT], dashboard, runbook)


def webhook_body(alert: Alert, message: Message, delivery_id: str) -> bytes:
    """The JSON a webhook channel receives (documented in docs/alerts.md)."""
    body = {
        "type": f"alert.{alert.status}",
        "delivery_id": delivery_id,
        "account": alert.account,
        "alert": alert.name,
        "severity": alert.severity,
        "status": alert.status,
        "summary": alert.annotations.get("summary", ""),
        "description": alert.annotations.get("description", ""),
        "figure": alert.annotations.get("figure", ""),
        "threshold": alert.annotations.get("threshold", ""),
        "labels": alert.labels,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "links": {"dashboard": message.dashboard_url, "runbook": message.runbook_url},
        "title": message.title,
        "text": message.text,
    }
    return json.dumps(body, sort_keys=True).encode()


def slack_body(message: Message) -> bytes:
    return json.dumps({"text": f"*{message.title}*\n{message.text}"}).encode()
