"""Issue 13, items 6 and 14: authentication failures are limited per address and per key
id, logged without the secret and counted, and a good key (and the admin token) keeps
working from an address that others' guesses have limited."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.durability.service import Service, batch

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def test_guesses_do_not_lock_out_good_credentials(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.start()
        assert service.post(batch("good-before", 2)).status_code == 204
        url = f"{service.url}/api/v1/events"
        guesses = [
            requests.post(
                url,
                data=b"[]",
                headers={
                    "Authorization": f"Bearer mh_{n:016x}_not-the-secret",
                    "Content-Type": "application/cloudevents-batch+json",
                },
                timeout=10,
            ).status_code
            for n in range(40)
        ]
        assert set(guesses) <= {401, 429} and 429 in guesses
        # The address is limited; its good key and the admin token still work.
        assert service.post(batch("good-after", 2)).status_code == 204
        keys = requests.get(
            f"{service.url}/api/v1/keys",
            headers={"Authorization": "Bearer durability-admin"},
            timeout=10,
        )
        assert keys.status_code == 200, keys.text
        balance = requests.get(
            f"{service.url}/api/v1/accounts/acme/balance",
            headers={"Authorization": "Bearer durability-admin"},
            timeout=10,
        )
        assert balance.status_code != 429, balance.text
        # A key id never seen good is still refused from the limited address.
        unknown = requests.post(
            url,
            data=b"[]",
            headers={
                "Authorization": "Bearer mh_ffffffffffffffff_x",
                "Content-Type": "application/cloudevents-batch+json",
            },
            timeout=10,
        )
        assert unknown.status_code == 429
        assert "not-the-secret" not in service.log_tail()
        metrics = requests.get(f"{service.url}/metrics", timeout=10).text
        assert "meterhouse_ingest_auth_failures_total{reason=" in metrics, [
            line for line in metrics.splitlines() if "auth" in line
        ]
    finally:
        service.stop()
