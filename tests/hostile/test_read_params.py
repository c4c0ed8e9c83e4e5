"""Issue 13, item 10: read parameters out of range are a 400 that says what is wrong,
never a 500 or a 503, on the real service."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.durability.service import Service
from tests.hostile.conftest import create_account

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

ADMIN = {"Authorization": "Bearer durability-admin"}


def test_out_of_range_read_parameters_are_400(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.start()
        create_account(service, "acme", "Europe/Paris")
        base = f"{service.url}/api/v1/accounts/acme"
        for path, params in (
            ("/events", {"since": "999999999w"}),
            ("/events", {"since": "0001-01-01"}),
            ("/events", {"until": "9999-12-31T23:59:59"}),
            ("/events", {"limit": "9" * 5000}),
            ("/balance", {"at": "0001-01-01"}),
            ("/balance", {"at": "9999-12-31T23:59:59+14:00"}),
            ("/statement", {"month": "9999-12"}),
            ("/statement", {"month": "0000-01"}),
            ("/jobs/nightly/runs", {"limit": "99999999999999999999"}),
        ):
            answer = requests.get(f"{base}{path}", params=params, headers=ADMIN, timeout=30)
            assert answer.status_code == 400, (path, params, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        assert requests.get(f"{base}/balance", headers=ADMIN, timeout=30).status_code == 200
    finally:
        service.stop()
