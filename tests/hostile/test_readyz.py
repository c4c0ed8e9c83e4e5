"""Issue 13, item 13: /readyz answers 503, with the reason, whenever ingest would refuse a
batch; here, batches larger than a tenth of MH_SPOOL_MAX_BYTES on a spool that has no room
for another one (the disk fault case is in test_disk_full.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.durability.service import Service, batch

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


def test_readyz_is_not_ready_while_big_batches_are_refused(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.start(faults="hold_drain=1", MH_SPOOL_MAX_BYTES=str(1024 * 1024))
        for number in range(100):
            answer = service.post(batch(f"big{number}", 250))
            if answer.status_code == 503:
                assert "spool is full" in answer.text, answer.text
                break
            assert answer.status_code == 204, answer.text
        else:
            raise AssertionError("the spool never filled")
        ready = requests.get(f"{service.url}/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        assert any("ingest spool full" in reason for reason in ready.json()["reasons"])
        assert service.metric("meterhouse_spool_bytes") < 0.9 * 1024 * 1024
    finally:
        service.stop()
