"""Issue 13, item 7: an anonymous scrape of /metrics names no account and no tenant
figure; the metrics token (or the admin token) gets the per-account series, and a wrong
token is refused, counted and limited. Against the real `meterhouse run`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.durability.service import Service
from tests.hostile.conftest import create_account

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

METRICS_TOKEN = "metrics-scrape-token"
ACCOUNT = "tenant-secret-acct"


def scrape(service: Service, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{service.url}/metrics", headers=headers, timeout=10)


def test_metrics_show_tenants_only_to_the_metrics_token(tmp_path: Path) -> None:
    service = Service(
        tmp_path,
        env={"MH_METRICS_TOKEN": METRICS_TOKEN, "MH_LEDGER_METRICS_REFRESH_SECONDS": "1"},
    )
    try:
        service.start()
        create_account(service, ACCOUNT)
        deadline = time.monotonic() + 30
        while ACCOUNT not in (full := scrape(service, METRICS_TOKEN).text):
            assert time.monotonic() < deadline, full[-2000:]
            time.sleep(0.3)
        assert f'meterhouse_account_balance_credits{{account="{ACCOUNT}"}}' in full
        assert ACCOUNT in scrape(service, "durability-admin").text

        anonymous = scrape(service)
        assert anonymous.status_code == 200
        assert ACCOUNT not in anonymous.text
        assert 'account="' not in anonymous.text and "scope_id=" not in anonymous.text
        # Service-wide series stay open.
        assert "meterhouse_spool_bytes" in anonymous.text
        assert "meterhouse_ledger_metrics_refresh_ok" in anonymous.text

        wrong = [scrape(service, f"guess-{n}").status_code for n in range(30)]
        assert set(wrong) <= {401, 429} and 429 in wrong
        counted = scrape(service, METRICS_TOKEN)
        assert 'meterhouse_read_auth_failures_total{reason="bad_metrics_token"}' in counted.text
        assert METRICS_TOKEN not in counted.text and "guess-" not in service.log_tail()
    finally:
        service.stop()
