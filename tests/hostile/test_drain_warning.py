"""Issue 13, item 13 (the stalled drain): while ClickHouse is down the spool still takes
batches (so /readyz stays 200), but /readyz says the drain has been failing, and why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.durability.service import Service, batch
from tests.durability.test_store_outage import clickhouse
from tests.support.cli import free_port

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def test_readyz_warns_of_a_failing_drain(tmp_path: Path) -> None:
    port = free_port()
    service = Service(
        tmp_path,
        env={
            "MH_CLICKHOUSE_URL": f"http://default:@127.0.0.1:{port}/hostile",
            "MH_SPOOL_DIR": str(tmp_path / "spool"),
            "MH_SPOOL_DRAIN_WARNING_SECONDS": "1",
        },
    )
    try:
        with clickhouse(tmp_path / "clickhouse", port, tmp_path / "shim.log"):
            service.start(timeout=120)
            # Key and account are read once while ClickHouse is up (then cached).
            assert service.post(batch("up", 10)).status_code == 204
            service.wait_drained()
            ready = requests.get(f"{service.url}/readyz", timeout=10).json()
            assert ready == {"status": "ready"}
        assert service.post(batch("down", 10)).status_code == 204
        deadline = time.monotonic() + 30
        while True:
            answer = requests.get(f"{service.url}/readyz", timeout=10)
            warnings = answer.json().get("warnings", [])
            if any("spool drain failing" in w for w in warnings):
                break
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.3)
        with clickhouse(tmp_path / "clickhouse", port, tmp_path / "shim.log"):
            service.wait_drained(timeout=90)
            assert "warnings" not in requests.get(f"{service.url}/readyz", timeout=10).json()
            service.stop()
    finally:
        service.stop()
