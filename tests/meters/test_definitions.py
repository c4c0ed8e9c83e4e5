"""Meter definitions are checked before anything uses them; errors name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterhouse.meters.definition import MeterError, parse, parse_path
from meterhouse.meters.registry import load_file
from tests.support.cli import meterhouse

GOOD: dict[str, Any] = {
    "slug": "rows_scanned",
    "eventType": "warehouse.query",
    "aggregation": "SUM",
    "valueProperty": "$.stats.rows",
    "groupBy": {"db": "$['database']", "first": "$.tables[0]"},
}


def test_paths_become_steps() -> None:
    meter = parse(GOOD)
    assert meter.value_property is not None
    assert meter.value_property.steps == ("stats", "rows")
    assert meter.group_by["db"].steps == ("database",)
    assert meter.group_by["first"].steps == ("tables", 0)
    assert parse_path("v", "$['a b'].c[-1]").steps == ("a b", "c", -1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "Rows-Scanned"}, "slug"),
        ({"aggregation": "MEDIAN"}, "aggregation"),
        ({"valueProperty": "stats.rows"}, "valueProperty"),
        ({"valueProperty": "$.stats[*]"}, "valueProperty"),
        ({"valueProperty": None}, "valueProperty"),
        ({"aggregation": "COUNT"}, "valueProperty"),
        ({"groupBy": {"subject": "$.s"}}, "groupBy.subject"),
        ({"groupBy": {"db": "database"}}, "groupBy.db"),
        ({"eventType": ""}, "eventType"),
        ({"eventFrom": "yesterday"}, "eventFrom"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_mistakes_name_their_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(MeterError) as refused:
        parse({**GOOD, **change})
    assert refused.value.field == field


def test_the_meters_file_names_the_meter_and_field(tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    path.write_text(
        "meters:\n  - {slug: a, eventType: t, aggregation: COUNT}\n"
        "  - {slug: b, eventType: t, aggregation: SUM, valueProperty: minutes}\n"
    )
    with pytest.raises(MeterError, match=r"meters\[1\]\.valueProperty: 'minutes' must start"):
        load_file(str(path))
    path.write_text("meters:\n  - {slug: a, eventType: t, aggregation: COUNT}\n")
    assert [m.slug for m in load_file(str(path))] == ["a"]
    assert load_file(str(path))[0].meter_id == load_file(str(path))[0].meter_id


def test_cli_on_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert meterhouse(data, "migrate").returncode == 0
    added = meterhouse(
        data, "meters", "add", "rows_scanned", "--event-type", "warehouse.query",
        "--aggregation", "SUM", "--value-property", "$.stats.rows", "--format", "json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)[0]["slug"] == "rows_scanned"
    again = meterhouse(
        data, "meters", "add", "rows_scanned", "--event-type", "x", "--aggregation", "COUNT"
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = meterhouse(
        data, "meters", "add", "bad", "--event-type", "x", "--aggregation", "SUM",
        "--value-property", "rows",
    )  # fmt: skip
    assert bad.returncode == 1 and "valueProperty" in bad.stderr
    listed = meterhouse(data, "meters", "list", "--format", "json")
    assert [m["slug"] for m in json.loads(listed.stdout)] == ["rows_scanned"]
    assert meterhouse(data, "meters", "remove", "rows_scanned").returncode == 0
    assert json.loads(meterhouse(data, "meters", "list", "--format", "json").stdout) == []
