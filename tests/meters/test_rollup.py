"""A meter's hourly rollup answers exactly what its events answer: events stored before
the meter (backfilled), after it (its view), and batches written again (a replay)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse.meters import rollup
from meterhouse.meters.definition import new_ulid, parse
from meterhouse.meters.query import MeterQuery, Scope, run_query
from meterhouse.meters.registry import Registry, load_file
from meterhouse.processing.columns import SCHEMAS
from meterhouse.store.base import Store

START = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)  # Berlin's summer time starts on the 29th
END = START + timedelta(days=4)


def _batch(
    first: int, count: int, rng: random.Random
) -> tuple[pa.Table, list[tuple[str, str, datetime, Decimal]]]:
    rows = []
    sent = []
    for index in range(first, first + count):
        account, subject = rng.choice([("acme", "a"), ("acme", "b"), ("globex", "a")])
        at = START + timedelta(
            milliseconds=rng.randrange(int((END - START).total_seconds() * 1000))
        )
        value = Decimal(rng.randrange(1, 10_000)) / 100
        gpu = rng.choice(["a100", "h100"])
        data = json.dumps({"minutes": str(value) if index % 2 else float(value), "gpu": gpu})
        rows.append((account, "", "", "", subject, "gpu.usage", "src", f"e{index}", at, data))
        sent.append((account, subject, at, value))
    columns = list(zip(*rows, strict=True))
    schema = SCHEMAS["meter_events"]
    table = pa.Table.from_arrays(
        [pa.array(list(values), field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    return table, sent


def test_rollup_equals_the_events_under_replays(migrated_any_store: Store) -> None:
    store = migrated_any_store  # embedded, and a server through clickhouse-connect
    rng = random.Random(3)
    writer = ClickHouseWriter(store)
    registry = Registry(store, [])
    registry.write_lock = writer.lock
    before, sent = _batch(0, 300, rng)
    assert writer.write_tables({"meter_events": before}, token="before").ok
    definition = {
        "slug": "gpu_minutes",
        "eventType": "gpu.usage",
        "aggregation": "SUM",
        "valueProperty": "$.minutes",
        "groupBy": {"gpu": "$.gpu"},
    }
    meter = registry.add(parse(definition), meter_id=new_ulid(), actor="test")
    assert rollup.exists(store, meter)
    after, more = _batch(300, 300, rng)
    for _ in range(2):  # the second write is a replay: same token, nothing counted twice
        assert writer.write_tables({"meter_events": after}, token="after").ok
    sent += more
    assert store.query("SELECT sum(events) FROM meter_hours").scalar() == len(sent)

    daily = MeterQuery(
        start=START, end=END, window="DAY", zone="Europe/Berlin", group_by=("subject", "gpu")
    )
    now = END + timedelta(days=1)
    scope = Scope("acme")
    hourly_answer = run_query(store, meter, scope, daily, now)
    raw = MeterQuery(  # not whole hours: read from the events
        start=START, end=END - timedelta(milliseconds=1), window="DAY", zone="Europe/Berlin",
        group_by=("subject", "gpu"),
    )  # fmt: skip
    assert [(r.window_start, r.subject, r.groups, r.value) for r in hourly_answer] == [
        (r.window_start, r.subject, r.groups, r.value)
        for r in run_query(store, meter, scope, raw, now)
    ]
    total = sum((r.value for r in hourly_answer), Decimal(0))
    assert total == sum((v for account, _, _, v in sent if account == "acme"), Decimal(0))
    short_day = [r for r in hourly_answer if r.window_end - r.window_start == timedelta(hours=23)]
    assert short_day, "the day summer time starts is 23 hours long"

    registry.remove("gpu_minutes", actor="test")
    assert not rollup.exists(store, meter)
    assert store.query("SELECT count() FROM meter_hours").scalar() == 0


def test_an_edited_file_meter_gets_a_new_rollup_and_drops_the_old_view(
    migrated_store: Store, tmp_path: Path
) -> None:
    store = migrated_store
    rng = random.Random(5)
    writer = ClickHouseWriter(store)
    events, sent = _batch(0, 200, rng)
    assert writer.write_tables({"meter_events": events}, token="one").ok
    path = tmp_path / "meters.yaml"
    line = "meters:\n  - {slug: gpu, eventType: gpu.usage, aggregation: %s%s}\n"
    views = (
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name LIKE 'meter_hours_gpu_%'"
    )
    answers = []
    for aggregation, value in (("COUNT", ""), ("SUM", ", valueProperty: $.minutes")):
        path.write_text(line % (aggregation, value))
        registry = Registry(store, load_file(str(path)))
        registry.ensure_rollups()
        assert len(store.query(views).rows) == 1
        (meter,) = registry.list()
        query = MeterQuery(start=START, end=END)
        answers.append(run_query(store, meter, Scope(), query, END)[0].value)
    assert answers == [len(sent), sum((v for _, _, _, v in sent), Decimal(0))]
