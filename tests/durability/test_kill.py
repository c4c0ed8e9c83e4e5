"""SIGKILL of `meterhouse run` at several moments of the drain: every acknowledged event is
stored exactly once after a restart, and nothing is ever stored twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from tests.durability.service import (
    SOURCE,
    Service,
    batch,
    expected_rows,
    killed_inside_a_batch,
    usage_id,
)

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

BATCH = 200


def send(service: Service, prefix: str, batches: int, acked: set[str], sent: set[str]) -> None:
    for number in range(batches):
        events = batch(f"{prefix}{number}", BATCH)
        sent.update(e["id"] for e in events)
        answer = service.post(events)
        assert answer.status_code == 204, answer.text
        acked.update(e["id"] for e in events)


def stream_until_killed(
    service: Service, acked: set[str], sent: set[str], prefix: str = "s"
) -> None:
    """Post batches until the service stops answering (it is killed meanwhile)."""
    for number in range(10_000):
        events = batch(f"{prefix}{number}", BATCH)
        sent.update(e["id"] for e in events)
        try:
            answer = service.post(events, timeout=10)
        except requests.RequestException:
            return
        if answer.status_code == 204:
            acked.update(e["id"] for e in events)


def check_exactly_once(service: Service, acked: set[str], sent: set[str]) -> None:
    for table, wanted in expected_rows(acked).items():
        counts = service.counts(table)
        missing = sorted(wanted - counts.keys())
        assert not missing, f"{table}: {len(missing)} acknowledged rows lost, e.g. {missing[:5]}"
        doubled = {e: n for e, n in counts.items() if n != 1}
        assert not doubled, f"{table}: rows stored more than once: {list(doubled.items())[:5]}"
    stray = set(service.counts("usage_events")) - {usage_id(e) for e in sent}
    assert not stray, f"rows of events never sent: {sorted(stray)[:5]}"


def wait_for_rows(service: Service, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        stored = service.sql(f"SELECT count() FROM usage_events WHERE source = '{SOURCE}'")[0][0]
        if stored:
            return int(stored)
        assert time.monotonic() < deadline, f"the drainer inserted nothing: {service.log_tail()}"
        time.sleep(0.05)


def test_sigkill_at_every_moment_of_the_drain_loses_and_doubles_nothing(tmp_path: Path) -> None:
    service = Service(tmp_path)
    acked: set[str] = set()
    sent: set[str] = set()
    try:
        # 1. Mid-drain: the drainer has inserted a batch and waits before the checkpoint
        #    that records it; more batches are acknowledged meanwhile, spooled behind it.
        service.start(faults="pause_before_checkpoint=120")
        send(service, "a", 5, acked, sent)
        assert wait_for_rows(service) > 0
        send(service, "b", 5, acked, sent)
        assert service.metric("meterhouse_spool_bytes") > 0
        service.kill()

        # 2. Restart: the batch inserted before the kill is replayed under its token (the
        #    engine drops its blocks), everything after it is drained as new.
        assert killed_inside_a_batch(service.data_dir / "meterhouse-spool")
        service.start()
        service.wait_drained()
        check_exactly_once(service, acked, sent)

        # 3. While a client streams: SIGKILL at whatever moment the acks have reached.
        streamer = threading.Thread(target=stream_until_killed, args=(service, acked, sent))
        before = len(acked)
        streamer.start()
        deadline = time.monotonic() + 30
        while len(acked) < before + 3 * BATCH and time.monotonic() < deadline:
            time.sleep(0.01)
        service.kill()
        streamer.join(30)
        assert len(acked) >= before + 3 * BATCH, "the stream was not acknowledged"

        service.start()
        service.wait_drained()
        check_exactly_once(service, acked, sent)

        # 4. After the checkpoint: nothing is pending; a SIGKILL and restart change nothing.
        service.kill()
        service.start()
        service.wait_drained()
        assert service.metric("meterhouse_spool_segments") == 1
        check_exactly_once(service, acked, sent)
    finally:
        service.stop()
