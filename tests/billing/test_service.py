"""`meterhouse run` with billing: scheduled sync, metrics, the webhook route, the CLI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from meterhouse.demo.local_stripe import LocalStripe
from tests.billing.stripe_fake import FAKE_API_KEY, WEBHOOK_SECRET, seed_catalog, seed_customers
from tests.support.cli import meterhouse, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$" if wanted else None
    for line in text.splitlines():
        if pattern is not None:
            found = re.match(pattern, line)
        else:
            found = re.match(rf"^{re.escape(name)} (\S+)$", line)
        if found:
            return float(found.groups()[-1])
    return None


def test_the_service_syncs_on_schedule_and_takes_webhooks(
    tmp_path: Path, fake: LocalStripe
) -> None:
    seed_customers(fake, 3, seed_catalog(fake))
    env = {
        "MH_STRIPE_API_KEY": FAKE_API_KEY,
        "MH_STRIPE_API_BASE": fake.url,
        "MH_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MH_STRIPE_MAX_NETWORK_RETRIES": "1",
        "MH_LOG_LEVEL": "info",
    }
    with running_service(tmp_path / "data", log_path=tmp_path / "service.log", **env) as service:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = requests.get(f"{service.url}/metrics", timeout=5).text
            if metric(
                text, "meterhouse_billing_sync_last_success_timestamp_seconds", **{"pass": "full"}
            ):
                break
            time.sleep(0.2)
        assert metric(text, "meterhouse_billing_sync_enabled") == 1
        assert metric(
            text, "meterhouse_billing_sync_last_success_timestamp_seconds", **{"pass": "full"}
        )
        # No account exists in this store: each Stripe customer is one open issue.
        assert (
            metric(text, "meterhouse_reconciliation_issues", kind="customer_without_account") == 3
        )

        customer = fake.create_customer(email="hook@example.com", account="hook")
        payload, headers = fake.webhook_delivery(fake.events[-1]["id"], WEBHOOK_SECRET)
        url = f"{service.url}/api/v1/stripe/webhook"
        accepted = requests.post(url, data=payload, headers=headers, timeout=10)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"status": "applied", "event": fake.events[-1]["id"]}
        tampered = requests.post(
            url, data=payload.replace(b"hook@", b"evil@"), headers=headers, timeout=10
        )
        assert tampered.status_code == 400
        assert tampered.headers["content-type"].startswith("application/problem+json")
        text = requests.get(f"{service.url}/metrics", timeout=5).text
        assert metric(text, "meterhouse_stripe_webhooks_total", outcome="applied") == 1
        assert metric(text, "meterhouse_stripe_webhooks_total", outcome="bad_signature") == 1

        sql = requests.post(
            f"{service.url}/api/v1/sql",
            json={
                "sql": "SELECT email FROM stripe_customers FINAL "
                f"WHERE customer_id = '{customer['id']}'"
            },
            headers={"Authorization": f"Bearer {service.admin_token}"},
            timeout=10,
        )
        assert sql.json()["rows"] == [["hook@example.com"]]
    log = (tmp_path / "service.log").read_text()
    assert "billing sync scheduled" in log
    assert "billing sync pass done" in log
    assert service.process.returncode is not None


def test_the_cli_syncs_once_lists_issues_and_opens_the_portal(
    tmp_path: Path, fake: LocalStripe
) -> None:
    subs = seed_customers(fake, 2, seed_catalog(fake))
    data = tmp_path / "data"
    env = {"MH_STRIPE_API_KEY": FAKE_API_KEY, "MH_STRIPE_API_BASE": fake.url}

    missing = meterhouse(data, "billing", "sync")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "Error: MH_STRIPE_API_KEY is not set: give the billing sync a Stripe secret or "
        "restricted key (read access to customers, products, prices, subscriptions, invoices, "
        "events; write access to billing portal sessions)"
    ]
    created = meterhouse(data, "migrate", **env)
    assert created.returncode == 0, created.stderr
    first = subs[0]["customer"]
    account = meterhouse(
        data,
        "accounts",
        "create",
        "acct00000",
        "--plan",
        "starter",
        "--stripe-customer-id",
        first,
        **env,
    )
    assert account.returncode == 0, account.stderr

    synced = meterhouse(data, "billing", "sync", "--format", "json", **env)
    assert synced.returncode == 0, synced.stderr
    summary = {row["what"]: row["value"] for row in json.loads(synced.stdout)}
    assert summary["pass"] == "full"
    assert summary["customer objects"] == 2
    assert summary["allowance grants created"] == 1  # what Stripe bills (pro) is granted
    assert summary["open issues: plan_mismatch"] == 1  # meterhouse says starter

    assert summary["open issues: customer_without_account"] == 1
    portal = meterhouse(
        data,
        "billing",
        "portal",
        "--account",
        "acct00000",
        "--return-url",
        "https://app.example/billing",
        **env,
    )
    assert portal.returncode == 0, portal.stderr
    assert portal.stdout.strip().startswith(f"{fake.url}/p/session/bps_")
    (key,) = fake.server.idempotency_keys
    assert key.startswith("meterhouse-portal-acct00000-")
