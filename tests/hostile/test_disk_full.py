"""Issue 13, items 1 and 13: the spool on a full disk. Batches are answered 503 (never 204)
while the disk is full, /readyz says so, nothing acknowledged is lost (not after growing
the disk, not after kill -9 and a restart), and a drained spool gives its space back."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import SegmentLog, Spool, SpoolError
from meterhouse.store.base import Store
from tests.durability.service import Service, batch, charged_events
from tests.durability.test_spool import rows
from tests.hostile.conftest import SmallDisk

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

BATCH = 100


def post_until_refused(service: Service, prefix: str, acked: set[str], refusals: int) -> int:
    """Post batches until ``refusals`` of them got 503; return how many got 204."""
    accepted = refused = 0
    for number in range(400):
        events = batch(f"{prefix}{number}", BATCH)
        answer = service.post(events)
        if answer.status_code == 204:
            acked.update(e["id"] for e in events)
            accepted += 1
            continue
        assert answer.status_code == 503, answer.text
        assert "No space left" in answer.text, answer.text
        assert answer.headers.get("retry-after"), answer.headers
        refused += 1
        if refused >= refusals:
            return accepted
    raise AssertionError("the disk never filled")


def readyz(service: Service) -> tuple[int, dict[str, Any]]:
    answer = requests.get(f"{service.url}/readyz", timeout=10)
    return answer.status_code, answer.json()


def wait_ready(service: Service, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (status := readyz(service))[0] != 200:
        assert time.monotonic() < deadline, f"/readyz stays {status}"
        time.sleep(0.1)


def stored(service: Service) -> set[str]:
    return charged_events(service)


def test_a_full_disk_refuses_and_loses_nothing_acknowledged(
    tmp_path: Path, small_disk: SmallDisk | None, migrated_store: Store
) -> None:
    if small_disk is None:  # no mount here: the same fault, injected at the write call
        partial_writes_in_process(migrated_store, tmp_path)
        return
    service = Service(tmp_path, env={"MH_SPOOL_DIR": str(small_disk.path)})
    acked: set[str] = set()
    try:
        # ClickHouse "down" (the drain held): the spool fills the 1.2 MB disk.
        service.start(faults="hold_drain=1")
        first = post_until_refused(service, "a", acked, refusals=3)
        assert first > 3
        status, body = readyz(service)
        assert status == 503, body
        assert any("No space left" in reason for reason in body["reasons"]), body
        assert service.metric("meterhouse_spool_disk_errors_total") >= 3

        # More room: /readyz recovers by itself, and batches are taken again.
        small_disk.grow("3m")
        wait_ready(service)
        for number in range(5):
            events = batch(f"b{number}", BATCH)
            answer = service.post(events)
            assert answer.status_code == 204, answer.text
            acked.update(e["id"] for e in events)

        # kill -9 and a restart with the drain running: every acknowledged event arrives,
        # and nothing was quarantined (no torn or misplaced bytes were left behind).
        service.kill()
        service.start()
        service.wait_drained(120)
        missing = acked - stored(service)
        assert not missing, f"{len(missing)} acknowledged events lost: {sorted(missing)[:5]}"
        assert service.metric("meterhouse_spool_kept_files") == 0
        assert not list((small_disk.path / "quarantine").glob("*"))
        assert "torn" not in service.log_tail()
    finally:
        service.stop()


def test_a_drained_spool_gives_its_space_back_on_a_full_disk(
    tmp_path: Path, small_disk: SmallDisk | None, migrated_store: Store
) -> None:
    """With the drain running, far more than the disk holds passes through it: the
    segment the drain has finished is retired early, not kept until it reaches 64 MB."""
    if small_disk is None:
        partial_writes_in_process(migrated_store, tmp_path)
        return
    service = Service(tmp_path, env={"MH_SPOOL_DIR": str(small_disk.path)})
    acked: set[str] = set()
    try:
        service.start()
        for number in range(120):  # about 8 MB through a 1.2 MB disk
            events = batch(f"c{number}", BATCH)
            for _ in range(100):
                answer = service.post(events)
                if answer.status_code == 204:
                    acked.update(e["id"] for e in events)
                    break
                assert answer.status_code == 503, answer.text
                time.sleep(0.05)
            else:
                raise AssertionError(f"batch {number} refused for good: {service.log_tail()}")
        service.wait_drained(120)
        missing = acked - stored(service)
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert len(acked) == 120 * BATCH
        status, body = readyz(service)
        assert status == 200, body
    finally:
        service.stop()


def partial_writes_in_process(store: Store, directory: Path) -> None:
    """The disk-full fault injected at the spool's write call: every other write stops
    half-way with ENOSPC. Refused batches raise; acknowledged ones all drain."""
    spool = Spool(
        directory / "spool", ClickHouseWriter(store), CollectorRegistry(), max_bytes=1 << 26
    )
    real_write: Callable[[int, Any], int] = os.write
    calls = {"n": 0}

    def half_then_enospc(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    acked: list[str] = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(os, "write", half_then_enospc)  # the spool is the only writer meanwhile
    try:
        for number in range(20):
            ids = [f"p{number}-{n}" for n in range(5)]
            try:
                spool.append(rows(store, *ids), len(ids))
            except SpoolError as exc:
                assert "No space left" in str(exc)
                continue
            acked.extend(ids)
    finally:
        monkey.undo()
    assert 0 < len(acked) < 100
    spool.start()
    try:
        assert spool.wait_drained(60)
    finally:
        spool.stop()
    found = {str(v) for (v,) in store.query("SELECT event_id FROM usage_events").rows}
    assert set(acked) <= found
    reopened = Spool(
        directory / "spool", ClickHouseWriter(store), CollectorRegistry(), max_bytes=1 << 26
    )
    assert reopened.log.quarantine.count() == 0
    reopened.stop(timeout=0)


def test_partial_writes_are_undone(migrated_store: Store, tmp_path: Path) -> None:
    partial_writes_in_process(migrated_store, tmp_path)


def test_a_damaged_end_found_on_a_full_disk_is_kept_once_there_is_room(tmp_path: Path) -> None:
    """At start on a full disk the torn end cannot be copied to the quarantine: it stays in
    its segment (appends go to a new one), the records before it drain, and it is
    quarantined as soon as the disk has room; nothing is cut off unseen."""
    directory = tmp_path / "spool"
    log = SegmentLog(directory, max_bytes=1 << 30, segment_bytes=1 << 26)
    payloads = [os.urandom(5000) for _ in range(5)]
    for payload in payloads:
        log.sync(log.append(payload))
    log.close()
    segment = directory / "00000000000000000001.seg"
    segment.write_bytes(segment.read_bytes()[:-100])  # the last record torn

    def no_space(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkey = pytest.MonkeyPatch()
    monkey.setattr(os, "write", no_space)  # the quarantine's copy fails
    try:
        reopened = SegmentLog(directory, max_bytes=1 << 30, segment_bytes=1 << 26)
        start = reopened.checkpoint
        first = list(reopened.read(start, 1 << 30))
        assert [r.payload for r in first] == payloads[:4]
        with pytest.raises(SpoolError, match="cannot be quarantined"):
            list(reopened.read(first[-1].end, 1 << 30))
    finally:
        monkey.undo()
    assert [r.payload for r in reopened.read(start, 1 << 30)] == payloads[:4]
    assert reopened.quarantine.count() == 1
    reopened.sync(reopened.append(b"after"))
    assert [r.payload for r in reopened.read(first[-1].end, 1 << 30)] == [b"after"]
    reopened.close()
