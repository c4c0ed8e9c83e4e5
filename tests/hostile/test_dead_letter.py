"""Issue 13, item 3: a record ClickHouse refuses for good (its rows, not an outage) is not
retried for ever: it goes to the dead-letter folder with the reason, visible in a metric,
the records around it drain on, and `meterhouse spool list|inspect|replay` lets an
operator look at it and send it again after the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import Spool, codec
from exporters.spool.quarantine import DEAD_LETTER, KeptFolder
from meterhouse.store.base import Store
from tests.durability.service import Service
from tests.durability.test_spool import rows
from tests.support.cli import meterhouse

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

LATER = "mh_hostile_later"  # a table a later migration would make


def stored_ids(store: Store) -> set[str]:
    return {str(v) for (v,) in store.query("SELECT event_id FROM usage_events").rows}


def test_a_record_refused_for_good_goes_to_the_dead_letters_and_replays(
    migrated_store: Store, tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    registry = CollectorRegistry()
    writer = ClickHouseWriter(migrated_store)
    spool = Spool(directory, writer, registry, max_bytes=1 << 26)
    refused = pa.table({"source": ["hostile"], "event_id": ["dl-1"], "note": ["kept"]})
    spool.append(rows(migrated_store, "g1"), 1)
    spool.append({LATER: refused}, 1)
    spool.append(rows(migrated_store, "g2"), 1)
    spool.start()
    try:
        assert spool.wait_drained(60)
    finally:
        spool.stop()
    assert {"g1", "g2"} <= stored_ids(migrated_store)
    assert spool.dead_letters.count() == 1
    assert registry.get_sample_value("meterhouse_spool_dead_letters_total") == 1
    assert registry.get_sample_value("meterhouse_spool_kept_files") == 1

    env = {"MH_SPOOL_DIR": str(directory)}
    listed = meterhouse(tmp_path / "store", "spool", "list", "--format", "json", **env)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["kind"] == "dead-letter" and "ClickHouse error 60" in entry["reason"]
    inspected = meterhouse(tmp_path / "store", "spool", "inspect", entry["name"], **env)
    shown = json.loads(inspected.stdout)
    assert shown["decodes"] and shown["tables"][LATER]["rows"] == 1
    assert shown["tables"][LATER]["sample"][0]["event_id"] == "dl-1"

    # The fix (the missing table), then the replay: the drain writes the record.
    migrated_store.command(
        f"CREATE TABLE {LATER} (source String, event_id String, note String) "
        "ENGINE = MergeTree ORDER BY (source, event_id)"
    )
    replayed = meterhouse(tmp_path / "store", "spool", "replay", entry["name"], **env)
    assert replayed.returncode == 0, replayed.stderr
    assert kept_count(directory) == 0
    again = Spool(directory, writer, CollectorRegistry(), max_bytes=1 << 26)
    again.start()
    try:
        assert again.wait_drained(60)
    finally:
        again.stop()
    assert migrated_store.query(f"SELECT note FROM {LATER}").scalar() == "kept"


def kept_count(directory: Path) -> int:
    return len(list((directory / "dead-letter").glob("*.json")))


def test_replay_through_the_running_service(migrated_store: Store, tmp_path: Path) -> None:
    """While `meterhouse run` owns the spool, `meterhouse spool replay` goes through it."""
    directory = tmp_path / "spool"
    payload = codec.encode(rows(migrated_store, "replayed-live"), 1, 1_800_000_000_000)
    kept = KeptFolder(directory, DEAD_LETTER).keep(1, 0, payload, "ClickHouse error 60: test")
    (tmp_path / "service").mkdir()
    service = Service(tmp_path / "service", env={"MH_SPOOL_DIR": str(directory)})
    try:
        service.start()
        env = {"MH_SPOOL_DIR": str(directory)}  # the CLI with the service's settings
        listed = meterhouse(service.data_dir, "spool", "list", "--format", "json", **env)
        assert [e["name"] for e in json.loads(listed.stdout)] == [kept.name]
        replayed = meterhouse(service.data_dir, "spool", "replay", kept.name, **env)
        assert replayed.returncode == 0, replayed.stderr
        assert "back in the spool of http" in replayed.stdout
        service.wait_drained()
        found = service.sql("SELECT event_id FROM usage_events WHERE source = 'spool.test'")
        assert ["replayed-live"] in found
        unknown = meterhouse(service.data_dir, "spool", "replay", "nope", **env)
        assert unknown.returncode == 1 and "no kept record" in unknown.stderr
    finally:
        service.stop()
