"""End to end: a budget crosses 80% in meterhouse and a webhook receives the notification.

Nothing is simulated: `meterhouse run` computes meterhouse_budget_used_ratio from its own
store, Prometheus scrapes it and evaluates prometheus/rules/credits.yml (``for`` shortened
to 1s), Alertmanager routes it with alertmanager/alertmanager.yml (webhook pointed here).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.alerting.stack import Stack, wait_until

ACCOUNT = "e2e"


@pytest.mark.prometheus
@pytest.mark.slow
def test_budget_crossing_80_percent_reaches_the_webhook(stack: Stack) -> None:
    ratio = f'meterhouse_budget_used_ratio{{account="{ACCOUNT}"}}'
    assert not stack.query(ratio)["data"]["result"], "the account has no budget yet"
    assert not _notifications(stack)

    # The condition: a budget of 100 credits this month, and 90 credits of usage.
    now = datetime.now(UTC)
    month = now.strftime("%Y-%m-01")
    stack.sql(
        "INSERT INTO budgets (account_id, scope, scope_id, month, amount) VALUES "
        f"('{ACCOUNT}', 'account', '{ACCOUNT}', '{month}', 100)"
    )
    stack.sql(
        "INSERT INTO usage_events (source, event_id, event_type, kind, event_time, local_date, "
        "account_id, item, `lines.usage_type`, `lines.quantity`, `lines.unit`, "
        "`lines.unit_price_credits`, `lines.unit_price_usd`, `lines.credits`, `lines.usd`, "
        "credits, usd, priced) VALUES "
        f"('e2e.test', 'evt_e2e_1', 'com.meterhouse.model.call', 'model', now64(3), today(), "
        f"'{ACCOUNT}', 'gpt-4o', ['output'], [9000], ['token'], [0.01], [0.0001], [90], [0.9], "
        "90, 0.9, 1)"
    )
    changed = time.monotonic()

    samples = wait_until(lambda: stack.query(ratio)["data"]["result"], 20, "the budget gauge")
    assert float(samples[0]["value"][1]) == pytest.approx(0.9)

    alerts = wait_until(lambda: _notifications(stack), 30, "the webhook notification")
    delivered = time.monotonic()
    alert = alerts[0]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "MeterhouseBudget80PercentUsed",
        "severity": "warning",
        "account": ACCOUNT,
        "scope": "account",
        "scope_id": ACCOUNT,
        "instance": alert["labels"]["instance"],
        "job": "meterhouse",
    }
    assert alert["annotations"]["summary"] == "e2e has used 90% of its account budget"
    assert alert["annotations"]["runbook_url"].endswith(
        "docs/alerts.md#meterhousebudget80percentused"
    )
    # Alertmanager's own API shows the same alert.
    answer = requests.get(
        f"{stack.alertmanager_url}/api/v2/alerts",
        params={"filter": ['alertname="MeterhouseBudget80PercentUsed"', f'account="{ACCOUNT}"']},
        timeout=5,
    )
    assert [a["labels"]["account"] for a in answer.json()] == [ACCOUNT]
    assert delivered - changed < 30
    assert delivered - stack.started < 60, "the whole run took too long"


def _notifications(stack: Stack) -> list[dict[str, Any]]:
    return [
        alert
        for alert in stack.webhook.alerts()
        if alert["labels"].get("account") == ACCOUNT
        and alert["labels"].get("alertname") == "MeterhouseBudget80PercentUsed"
    ]
