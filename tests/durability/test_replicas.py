"""Three `meterhouse run` replicas, each with its own spool, against one ClickHouse server
(the server backend through clickhouse-connect, the engine behind the HTTP shim), all
receiving the same events at once and re-deliveries at random: every event is stored once
in every table, rollup and statement."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durability.service import Service, batch
from tests.durability.test_kill import check_exactly_once
from tests.durability.test_kill_random import rollup_mismatches, statement_matches_raw
from tests.support.cli import meterhouse
from tests.support.clickhouse_http import ShimProcess

REPLICAS = 3
BATCHES = 12
# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    with ShimProcess(tmp_path / "clickhouse", log_path=tmp_path / "shim.log") as shim:
        yield shim.url.replace("http://", "http://default:@") + "/meterhouse"


def replica(root: Path, number: int, server_url: str) -> Service:
    return Service(
        root / f"replica-{number}",
        env={
            "MH_CLICKHOUSE_URL": server_url,
            "MH_SPOOL_DIR": str(root / f"replica-{number}" / "spool"),
            "MH_SQL_MAX_ROWS": "1000000",
        },
    )


def test_three_replicas_store_every_event_once(tmp_path: Path, server_url: str) -> None:
    rng = random.Random(3)
    replicas = [replica(tmp_path, n, server_url) for n in range(REPLICAS)]
    for service in replicas:
        service.root.mkdir(parents=True)
    acked: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()

    def deliver(service: Service, events: list[dict[str, object]]) -> None:
        answer = service.post(events, timeout=120)
        assert answer.status_code == 204, answer.text
        with lock:
            acked.update(str(e["id"]) for e in events)

    try:
        replicas[0].start()  # migrates the server's database first
        for service in replicas[1:]:
            service.start()
        assert replicas[0].sql("SELECT currentDatabase()")[0][0] == "meterhouse"
        shown = meterhouse(tmp_path, "accounts", "show", "acme", MH_CLICKHOUSE_URL=server_url)
        assert shown.returncode == 0, shown.stderr  # created by the first replica's start
        delivered: list[list[dict[str, object]]] = []
        for number in range(BATCHES):
            events = batch(f"r{number}", 100)
            sent.update(str(e["id"]) for e in events)
            delivered.append(events)
            # The same batch to every replica at once, and an earlier one again somewhere.
            jobs = [(service, events) for service in replicas]
            old = rng.choice(delivered)
            jobs.append((rng.choice(replicas), rng.sample(old, len(old) // 2)))
            threads = [threading.Thread(target=deliver, args=job) for job in jobs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(180)
        for service in replicas:
            service.wait_drained(timeout=180)
        duplicates = sum(
            service.metric_sum("meterhouse_ingest_duplicate_rows_total") for service in replicas
        )
        assert duplicates > 0, "no replica ever dropped a duplicate: the test tested nothing"
        check_exactly_once(replicas[1], acked, sent)
        assert rollup_mismatches(replicas[2]) == []
        statement_matches_raw(replicas[0])
    finally:
        for service in replicas:
            service.stop()
