"""Issue 13, item 2: a damaged byte in the spool costs the record it is in, nothing more.
The record goes to the quarantine (logged at error with its position, counted), the
records around it drain, and the service stays up: after kill -9 and a restart, and while
it runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import Spool
from meterhouse.store.base import Store
from tests.durability.service import Service, batch, charged_events
from tests.durability.test_spool import rows

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

BATCHES = 40
BATCH = 100
FLIPS = 3


def flip(path: Path, offsets: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_flipped_bytes_after_a_kill_cost_their_records_alone(tmp_path: Path) -> None:
    service = Service(tmp_path)
    spool_dir = service.data_dir / "meterhouse-spool"
    acked: dict[str, set[str]] = {}
    try:
        service.start(faults="hold_drain=1")
        for number in range(BATCHES):
            events = batch(f"d{number}x", BATCH)
            answer = service.post(events)
            assert answer.status_code == 204, answer.text
            acked[f"d{number}x"] = {e["id"] for e in events}
        service.kill()

        segments = sorted(spool_dir.glob("*.seg"))
        assert segments
        seed = random.randrange(1 << 30)
        chooser = random.Random(seed)
        size = segments[0].stat().st_size
        offsets = sorted(chooser.randrange(size) for _ in range(FLIPS))
        flip(segments[0], offsets)

        service.start()
        service.wait_drained(120)
        stored = charged_events(service)
        lost = {prefix for prefix, ids in acked.items() if not ids <= stored}
        context = f"seed {seed}, offsets {offsets}: {service.log_tail()}"
        # Each flip costs at most the one batch (spool record) it landed in, and a lost
        # batch is lost whole: it is in the quarantine, not half-stored.
        assert 1 <= len(lost) <= FLIPS, context
        for prefix in lost:
            assert not acked[prefix] & stored, context
        # Damaged records side by side are kept as one item (their boundary is unknown).
        kept = sorted((spool_dir / "quarantine").glob("*.bin"))
        assert 1 <= len(kept) <= len(lost), context
        assert sum(path.stat().st_size for path in kept) >= len(lost) * 1000, context
        assert service.metric("meterhouse_spool_kept_files") == len(kept)
        assert "damaged record moved to the quarantine" in service.log_tail()

        # The service goes on taking and draining batches.
        events = batch("after", BATCH)
        assert service.post(events).status_code == 204
        service.wait_drained(60)
        assert {e["id"] for e in events} <= charged_events(service)
    finally:
        service.stop()


def test_damage_while_running_is_quarantined_and_the_drain_goes_on(
    migrated_store: Store, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    spool = Spool(tmp_path, ClickHouseWriter(migrated_store), registry, max_bytes=1 << 26)
    ends = []
    for number in range(20):
        spool.append(rows(migrated_store, *(f"r{number}-{n}" for n in range(3))), 3)
        ends.append(spool.log.written)
    # A record whose checksum holds but which is not a batch (another version, a bug).
    spool.log.sync(spool.log.append(b"\x00" * 8 + b"not a spool batch"))
    spool.append(rows(migrated_store, "last-1"), 1)
    # One byte flipped in the middle of record 10, with the log open (no repair at start).
    segment = tmp_path / "00000000000000000001.seg"
    flip(segment, [(ends[9].offset + ends[10].offset) // 2])
    spool.start()
    try:
        assert spool.wait_drained(60)
    finally:
        spool.stop()
    found = {str(v) for (v,) in migrated_store.query("SELECT event_id FROM usage_events").rows}
    wanted = {f"r{number}-{n}" for number in range(20) if number != 10 for n in range(3)}
    assert wanted | {"last-1"} == found
    assert spool.log.quarantine.count() == 2
    reasons = sorted(entry.reason for entry in spool.log.quarantine.entries())
    assert reasons[0].startswith("cannot be decoded"), reasons
    assert reasons[1] == "checksum or length mismatch", reasons
    assert registry.get_sample_value("meterhouse_spool_quarantined_records_total") == 2


def test_a_damaged_last_record_is_kept_and_counted_at_start(
    migrated_store: Store, tmp_path: Path
) -> None:
    first = Spool(
        tmp_path, ClickHouseWriter(migrated_store), CollectorRegistry(), max_bytes=1 << 26
    )
    first.append(rows(migrated_store, "t1"), 1)
    first.append(rows(migrated_store, "t2"), 1)
    first.stop(timeout=0)
    segment = tmp_path / "00000000000000000001.seg"
    flip(segment, [segment.stat().st_size - 3])
    registry = CollectorRegistry()
    second = Spool(tmp_path, ClickHouseWriter(migrated_store), registry, max_bytes=1 << 26)
    assert registry.get_sample_value("meterhouse_spool_quarantined_records_total") == 1
    assert second.log.quarantine.entries()[0].reason == "torn or damaged end of the log"
    second.start()
    try:
        assert second.wait_drained(60)
    finally:
        second.stop()
    found = {str(v) for (v,) in migrated_store.query("SELECT event_id FROM usage_events").rows}
    assert found == {"t1"}
