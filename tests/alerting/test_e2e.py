"""End to end, with the configuration files as shipped: alerts reach each account's people.

`meterhouse demo` data in which a project of acme has used more than 80 % of its
budget; `meterhouse run` computes the budget gauges; Prometheus (prometheus.yml and the
rules as shipped) fires MeterhouseBudget80PercentUsed; Alertmanager (alertmanager.yml as
shipped, addresses and secrets filled from MH_* settings) notifies meterhouse's receiver;
meterhouse delivers to acme's channels: a webhook that checks the signature the way any
receiver would, an e-mail to a real SMTP server, and a webhook that fails twice. globex
gets its own 50 % alert on its own channels, and neither hears of the other's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.alerting.stack import OPERATOR_EMAIL, Received, Stack, wait_until

FIRING_BUDGET = "MeterhouseBudget80PercentUsed"


def signature_ok(secret: str, received: Received, tolerance: int = 300) -> bool:
    """A receiver's check, written from docs/alerts.md: HMAC-SHA256 of "<t>.<body>"."""
    header = received.headers.get("Meterhouse-Signature", "")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp = parts.get("t", "0")
    expected = hmac.new(
        secret.encode(), stamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(stamp)) < tolerance
    return fresh and hmac.compare_digest(parts.get("v1", ""), expected)


def posts(stack: Stack, path: str, alert: str, status: str = "") -> list[Received]:
    return [
        r
        for r in stack.hooks.at(path)
        if r.json()["alert"] == alert and (not status or r.json()["status"] == status)
    ]


def mails(stack: Stack, address: str, *words: str) -> list[Any]:
    return [m for m in stack.mailbox.to(address) if all(w in str(m["Subject"]) for w in words)]


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_budget_alert_reaches_the_accounts_channels_signed_recorded_and_resolved(
    stack: Stack,
) -> None:
    ratio = 'meterhouse_budget_used_ratio{account="acme", scope="project"}'
    samples = wait_until(lambda: stack.query(ratio)["data"]["result"], 60, "acme's budget gauge")
    crossed = {s["metric"]["scope_id"] for s in samples if 0.8 <= float(s["value"][1]) < 1}
    assert crossed, "the demo has a project budget of acme past 80%"
    # globex: a budget for this month at about 60 % of what it used, so 50 % is crossed.
    stack.sql(
        "INSERT INTO budgets (account_id, scope, scope_id, month, amount) "
        "SELECT 'globex', 'account', 'globex', toStartOfMonth(max(local_date)), "
        "toDecimal128(sum(credits) / 0.6, 2) FROM usage_events WHERE account_id = 'globex' "
        "AND local_date >= (SELECT toStartOfMonth(max(local_date)) FROM usage_events "
        "WHERE account_id = 'globex')"
    )

    # Firing: the signed webhook, the e-mail, and the flaky webhook after two failures.
    first = wait_until(
        lambda: posts(stack, "/acme", FIRING_BUDGET, "firing"), 300, "acme's webhook", pause=2
    )[0]
    secret = stack.channels["acme-webhook"][1]
    assert signature_ok(secret, first)
    assert not signature_ok(secret, Received(first.path, first.headers, first.body + b" "))
    assert not signature_ok(stack.channels["globex-webhook"][1], first)
    body = first.json()
    assert first.headers["Meterhouse-Delivery-Id"] == body["delivery_id"]
    assert body["account"] == "acme"
    assert body["labels"]["scope_id"] in crossed
    assert body["labels"]["budget"] == f"project:{body['labels']['scope_id']}"
    assert body["severity"] == "warning"
    assert body["figure"].endswith("% used") and body["threshold"] == "80% of the budget"
    assert "/d/meterhouse-overview?var-account=acme" in body["links"]["dashboard"]
    assert body["links"]["runbook"] == "docs/alerts.md#meterhousebudget80percentused"
    assert "acme" in body["summary"] and "project budget" in body["summary"]

    mail = wait_until(
        lambda: mails(stack, "alerts@acme.example", "FIRING warning", "project budget"),
        60,
        "acme's e-mail",
    )[0]
    assert "account acme" in str(mail["Subject"])
    text = mail.get_content()
    assert "Threshold: 80% of the budget" in text and "Account: acme" in text
    assert "Budget: project:" in text
    assert "var-account=acme" in text

    # The flaky channel: each delivery (one per budget past 80 %) failed twice, then went
    # through on the third attempt with the same delivery id; the log shows all three.
    def flaky_attempts() -> dict[str, list[int]]:
        by_budget: dict[str, list[int]] = {}
        for r in posts(stack, "/acme-flaky", FIRING_BUDGET, "firing"):
            by_budget.setdefault(r.json()["labels"]["scope_id"], []).append(1)
        done = len(by_budget) == len(crossed) and all(len(n) >= 3 for n in by_budget.values())
        return by_budget if done else {}

    wait_until(flaky_attempts, 60, "three attempts of each delivery to the flaky channel")
    ids: dict[str, set[str]] = {}
    for r in posts(stack, "/acme-flaky", FIRING_BUDGET, "firing"):
        ids.setdefault(r.json()["labels"]["scope_id"], set()).add(
            r.headers["Meterhouse-Delivery-Id"]
        )
    assert all(len(found) == 1 for found in ids.values()), "a retry keeps its delivery id"
    flaky_id = stack.channels["acme-flaky"][0]

    def flaky_log() -> dict[str, list[tuple[int, str, int]]]:
        done = stack.cli("notify", "log", "--account", "acme", "--format", "json")
        assert done.returncode == 0, done.stderr
        by_delivery: dict[str, list[tuple[int, str, int]]] = {}
        for r in json.loads(done.stdout):
            mine = r["channel_id"] == flaky_id and r["alert"] == FIRING_BUDGET
            if mine and r["status"] == "firing":
                by_delivery.setdefault(r["delivery_id"], []).append(
                    (r["attempt"], r["outcome"], r["response_code"])
                )
        sent = [a for a in by_delivery.values() if any(o == "sent" for _, o, _ in a)]
        return by_delivery if len(sent) == len(crossed) else {}

    logged = wait_until(flaky_log, 30, "the flaky channel's attempts in the log")
    assert set(logged) == set().union(*ids.values())
    for attempts in logged.values():
        assert sorted(attempts) == [(1, "retrying", 500), (2, "retrying", 500), (3, "sent", 200)]

    # globex hears of its own 50 % crossing, on its own channels.
    wait_until(
        lambda: posts(stack, "/globex", "MeterhouseBudget50PercentUsed"), 240, "globex webhook"
    )
    wait_until(lambda: mails(stack, "ops@globex.example", "account budget"), 60, "globex's e-mail")

    # Resolving: the budget raised far above the usage sends the resolved notice.
    stack.sql(
        "INSERT INTO budgets (account_id, scope, scope_id, month, amount) SELECT account_id, "
        "scope, scope_id, month, 1000000 FROM budgets FINAL WHERE account_id = 'acme' "
        "AND scope = 'project'"
    )
    resolved = wait_until(
        lambda: posts(stack, "/acme", FIRING_BUDGET, "resolved"), 240, "the resolved notice"
    )[0]
    assert signature_ok(secret, resolved)
    assert resolved.json()["type"] == "alert.resolved"
    wait_until(
        lambda: mails(stack, "alerts@acme.example", "RESOLVED", "project budget"),
        60,
        "resolved e-mail",
    )

    # Operators see the attempts in Prometheus (the retries of the flaky channel among them).
    retried = 'meterhouse_notification_attempts_total{channel_type="webhook", outcome="retrying"}'
    wait_until(
        lambda: float(stack.query(retried)["data"]["result"][0]["value"][1]) >= 2,
        40,
        "the retries counted on /metrics",
    )

    # No notification for one account reached another's channel.
    for path, account in (("/acme", "acme"), ("/acme-flaky", "acme"), ("/globex", "globex")):
        assert {r.json()["account"] for r in stack.hooks.at(path)} == {account}, path
    for address, account, other in (
        ("alerts@acme.example", "acme", "globex"),
        ("ops@globex.example", "globex", "acme"),
    ):
        for received in stack.mailbox.to(address):
            assert f"account {account}" in str(received["Subject"])
            assert f"account {other}" not in str(received["Subject"])
            assert f"Account: {other}" not in received.get_content()
    assert not [m for m in stack.mailbox.to("alerts@acme.example") if "globex" in str(m)]


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_failed_job_run_is_notified_naming_the_account_and_the_job(stack: Stack) -> None:
    job_id, kind = stack.sql(
        "SELECT job_id, kind FROM jobs_current WHERE account_id = 'acme' ORDER BY job_id LIMIT 1",
        write=False,
    )["rows"][0]
    stack.sql(
        "INSERT INTO job_run_events (account_id, job_id, run_id, kind, status, status_rank, "
        "event_time, error_type, error_message) VALUES "
        f"('acme', '{job_id}', 'run_e2e_failed', '{kind}', 'running', 2, now64(3) - 60, '', ''),"
        f"('acme', '{job_id}', 'run_e2e_failed', '{kind}', 'failed', 3, now64(3), "
        "'OOMKilled', 'worker ran out of memory')"
    )

    def notified() -> list[dict[str, Any]]:
        return [
            body
            for r in posts(stack, "/acme", "MeterhouseJobRunFailed")
            if (body := r.json())["labels"].get("job") == job_id
        ]

    body = wait_until(notified, 120, "the job failure notification", pause=2)[0]
    assert body["account"] == "acme" and body["labels"]["kind"] == kind
    assert job_id in body["summary"] and "acme" in body["summary"]
    assert "worker ran out of memory" in body["description"]
    assert "/d/meterhouse-jobs?var-account=acme" in body["links"]["dashboard"]
    assert not [r for r in stack.hooks.at("/globex") if r.json()["labels"].get("job") == job_id], (
        "acme's job reached globex"
    )


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_platform_alert_reaches_the_operators_by_mail_and_their_channel(stack: Stack) -> None:
    """An alert naming no account: Alertmanager e-mails MH_OPERATOR_EMAIL itself (through the
    shipped SMTP settings) and meterhouse delivers it to the operators' channels only."""
    name = "MeterhouseE2EPlatformProbe"
    answer = requests.post(
        f"{stack.alertmanager_url}/api/v2/alerts",
        json=[
            {
                "labels": {"alertname": name, "severity": "critical"},
                "annotations": {"summary": "a platform alert from the end-to-end test"},
            }
        ],
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    mail = wait_until(
        lambda: [m for m in stack.mailbox.to(OPERATOR_EMAIL) if name in str(m["Subject"])],
        90,
        "Alertmanager's e-mail to the operators",
        pause=1,
    )[0]
    assert "FIRING" in str(mail["Subject"])
    hook = wait_until(lambda: posts(stack, "/operators", name), 60, "the operators' channel")[0]
    assert signature_ok(stack.channels["operators-webhook"][1], hook)
    assert hook.json()["account"] == ""
    assert not [r for p in ("/acme", "/globex") for r in posts(stack, p, name)]


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_silenced_alert_reaches_nobody(stack: Stack) -> None:
    """Silences stay Alertmanager's: what it silences, meterhouse never hears of."""
    silenced, control = "MeterhouseE2ESilenced", "MeterhouseE2ENotSilenced"
    now = datetime.now(UTC)
    silence = requests.post(
        f"{stack.alertmanager_url}/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": silenced, "isRegex": False}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "e2e",
            "comment": "checking silences",
        },
        timeout=10,
    )
    assert silence.status_code == 200, silence.text
    alerts = [
        {"labels": {"alertname": name, "severity": "critical"}, "annotations": {"summary": name}}
        for name in (silenced, control)
    ]
    answer = requests.post(f"{stack.alertmanager_url}/api/v2/alerts", json=alerts, timeout=10)
    assert answer.status_code == 200, answer.text
    # The control alert, routed and flushed like the silenced one, arrives; the other not.
    wait_until(lambda: posts(stack, "/operators", control), 90, "the unsilenced alert", pause=1)
    wait_until(
        lambda: [m for m in stack.mailbox.to(OPERATOR_EMAIL) if control in str(m["Subject"])],
        30,
        "the unsilenced alert's e-mail",
    )
    assert posts(stack, "/operators", silenced) == []
    assert not [m for m in stack.mailbox.to(OPERATOR_EMAIL) if silenced in str(m["Subject"])]
