"""ClickHouse goes away while clients stream: the service keeps accepting into its spool,
answers 503 with Retry-After once the spool is full, and after ClickHouse is back drains
everything it acknowledged, exactly once.

ClickHouse here is the real engine behind the HTTP shim (tests/support/clickhouse_http.py),
in its own process, stopped and started again on the same port and data.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.durability.service import Service, batch, expected_rows, usage_id
from tests.support.cli import free_port

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def clickhouse(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The shim on a fixed port, so the service's URL stays valid across a restart."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "ab") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.clickhouse_http"),
                *("--data", str(data_dir), "--port", str(port), "--exit-with-parent"),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready and process.stdout.readline().startswith(b"LISTENING"), log.read_text()
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_store_outage_fills_the_spool_then_drains_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    service = Service(
        tmp_path,
        env={
            "MH_CLICKHOUSE_URL": f"http://default:@127.0.0.1:{port}/durability",
            "MH_SPOOL_DIR": str(tmp_path / "spool"),
            "MH_SPOOL_MAX_BYTES": str(256 * 1024),
        },
    )
    acked: set[str] = set()
    refused: list[list[dict[str, object]]] = []
    store_dir = tmp_path / "clickhouse"
    try:
        with clickhouse(store_dir, port, tmp_path / "shim.log"):
            service.start(timeout=120)
            first = batch("up", 50)
            assert service.post(first).status_code == 204
            acked.update(e["id"] for e in first)
            service.wait_drained()
        # ClickHouse is down: accepted until the spool is full, then 503 + Retry-After.
        for number in range(200):
            events = batch(f"down{number}", 50)
            answer = service.post(events)
            if answer.status_code == 204:
                acked.update(e["id"] for e in events)
                continue
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) > 0
            assert "spool is full" in answer.json()["detail"]
            refused.append(events)
            break
        assert refused, "the spool never filled"
        assert len(acked) > 100, "nothing was accepted while ClickHouse was down"
        ready = requests.get(f"{service.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert any("spool full" in reason for reason in ready.json()["reasons"])
        assert service.metric("meterhouse_spool_oldest_age_seconds") > 0
        time.sleep(1)  # the drainer keeps failing and backing off meanwhile
        assert service.metric("meterhouse_spool_drain_errors_total") > 0

        with clickhouse(store_dir, port, tmp_path / "shim.log"):
            service.wait_drained(timeout=90)
            assert service.metric("meterhouse_spool_oldest_age_seconds") == 0
            # What was refused was not kept; sent again now, it is accepted.
            refused_ids = {e["id"] for e in refused[0]}
            refused_usage = {usage_id(e) for e in refused_ids}
            assert not refused_usage & set(service.counts("usage_events"))
            assert service.post(refused[0]).status_code == 204
            acked |= refused_ids
            service.wait_drained()
            for table, wanted in expected_rows(acked).items():
                counts = service.counts(table)
                assert wanted == set(counts), f"{table}: lost {sorted(wanted - set(counts))[:5]}"
                assert set(counts.values()) == {1}, f"{table}: doubled rows"
            service.stop()
    finally:
        service.stop()
