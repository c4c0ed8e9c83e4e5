"""The committed dashboards against Grafana's JSON schemas (schemaVersion 42) and house rules.

The schemas (shared reference grafana/jsonschema/, from grafana-foundation-sdk) are strict
(``additionalProperties: false``) and reject a few things Grafana itself accepts. Those are
listed in ALLOWED below, each with why; everything else must validate. Each allowance must
still be needed, so the list cannot quietly outlive its reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from meterhouse.cli import cli
from meterhouse.dashboards import compare, rendered, write
from meterhouse.dashboards import custom as custom_boards
from meterhouse.dashboards.grafana import CLICKHOUSE_PLUGIN_VERSION, GRID_WIDTH, Board
from tests.dashboards.conftest import DASHBOARD_DIR, shared_reference
from tests.dashboards.test_custom import doc_examples

Dashboard = dict[str, Any]


def _drop_variable_ids(board: Dashboard) -> int:
    """The SDK writes an ``id`` on every variable; Grafana ignores it, the schema has none."""
    count = 0
    for variable in board.get("templating", {}).get("list", []):
        if variable.pop("id", None) is not None:
            count += 1
    return count


def _drop_style(board: Dashboard) -> int:
    """The SDK always writes the pre-v7 ``style`` key; Grafana ignores it."""
    return 1 if board.pop("style", None) is not None else 0


def _scalar_override_values(board: Dashboard) -> int:
    """Overrides: the schema types ``matcher.options`` and ``properties[].value`` as objects,
    but Grafana's byName matcher takes the field name (a string) and property values are
    whatever the property is (a unit string, a width number, a list of links)."""
    count = 0
    for panel in panels(board):
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            if not isinstance(override["matcher"].get("options", {}), dict):
                override["matcher"]["options"] = {"value": override["matcher"]["options"]}
                count += 1
            for prop in override["properties"]:
                if "value" in prop and not isinstance(prop["value"], dict):
                    prop["value"] = {"value": prop["value"]}
                    count += 1
    return count


ALLOWED: dict[str, Callable[[Dashboard], int]] = {
    "variable ids": _drop_variable_ids,
    "style key": _drop_style,
    "scalar override options and values": _scalar_override_values,
}


def panels(board: Dashboard) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


@cache
def _schema(name: str, definition: str | None = None) -> jsonschema.Draft7Validator:
    path = shared_reference() / "grafana" / "jsonschema" / f"{name}.jsonschema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, instance: Any, where: str) -> list[str]:
    found = []
    for error in validator.iter_errors(instance):
        context = "; ".join(sub.message[:160] for sub in (error.context or [])[:4])
        path = "/".join(map(str, error.absolute_path))
        found.append(f"{where} {path}: {error.message[:200]} {context}")
    return found


def test_dashboards_match_the_schemas(committed: dict[str, Dashboard]) -> None:
    problems: list[str] = []
    used = dict.fromkeys(ALLOWED, 0)
    # The custom dashboards of docs/dashboards.md, as `dashboards custom render` writes them.
    examples = [custom_boards.build(custom_boards.parse(text)).dashboard for text in doc_examples()]
    for uid, original in [*committed.items(), *((e["uid"], e) for e in examples)]:
        board = copy.deepcopy(original)
        for name, allowance in ALLOWED.items():
            used[name] += allowance(board)
        assert board["schemaVersion"] == 42
        problems += _errors(_schema("dashboard"), board, uid)
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            where = f"{uid} / {panel['title']}"
            assert panel["type"] in ("stat", "table", "timeseries"), f"{where}: no schema"
            problems += _errors(_schema(panel["type"], "Options"), panel["options"], where)
            custom = panel["fieldConfig"]["defaults"].get("custom")
            if custom is not None and panel["type"] != "stat":
                problems += _errors(_schema(panel["type"], "FieldConfig"), custom, where)
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    problems += _errors(_schema("prometheus"), target, where)
    assert not problems, "\n".join(problems)
    unused = [name for name, count in used.items() if not count]
    assert not unused, f"allowances no longer needed, remove them: {unused}"


def test_clickhouse_and_prometheus_targets(committed: dict[str, Dashboard]) -> None:
    for uid, board in committed.items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                where = f"{uid} / {panel['title']}"
                source = target["datasource"]
                assert panel["datasource"] == source, f"{where}: panel and target sources differ"
                if source["type"] == "prometheus":
                    assert source["uid"] == "prometheus"
                    assert target["expr"] and target["refId"]
                    continue
                assert source == {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
                assert target["editorType"] == "sql"
                assert target["pluginVersion"] == CLICKHOUSE_PLUGIN_VERSION
                assert (target["format"], target["queryType"]) in ((0, "timeseries"), (1, "table"))
                assert (target["format"] == 0) == (panel["type"] == "timeseries"), where
                assert target["rawSql"].strip() and target["refId"]


def test_layout_ids_and_links(committed: dict[str, Dashboard]) -> None:
    uids = set(committed)
    assert len(uids) == 7
    for uid, board in committed.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        for panel in panels(board):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_WIDTH, f"{uid}: {panel['title']}"
            mine = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not mine & cells, f"{uid}: {panel['title']} overlaps another panel"
            cells |= mine
        assert "meterhouse" in board["tags"]
        # Links between dashboards: tests/dashboards/test_links.py.


_REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def test_queries_only_use_defined_variables(committed: dict[str, Dashboard]) -> None:
    """A misspelt ${variable} would be sent to ClickHouse as is: catch it here."""
    for uid, board in committed.items():
        defined = {v["name"] for v in board["templating"].get("list", [])}
        texts = [
            t.get("rawSql", "") + t.get("expr", "")
            for p in panels(board)
            for t in p.get("targets", [])
        ]
        texts += [v.get("query", "") for v in board["templating"].get("list", [])]
        for text in texts:
            for match in _REFERENCE.finditer(text):
                name = next(g for g in match.groups() if g)
                assert name.startswith("__") or name in defined, f"{uid}: ${name} undefined"


def test_tenant_variables(committed: dict[str, Dashboard]) -> None:
    for uid, board in committed.items():
        names = [v["name"] for v in board["templating"].get("list", [])]
        sql = " ".join(t.get("rawSql", "") for p in panels(board) for t in p.get("targets", []))
        if uid == "meterhouse-pipeline-health":
            assert not names  # Prometheus only; its series carry no tenant
            continue
        assert names[0] == "account"
        if "${tz" in sql:
            # The month is the account's: a hidden tz variable read from accounts.time_zone.
            tz = next(v for v in board["templating"]["list"] if v["name"] == "tz")
            assert tz["hide"] == 2 and "time_zone" in tz["query"]
        if "$team" in sql:
            assert {"team", "project"} <= set(names)
    # "This month" is the account's: its start is taken in the account's time zone.
    overview = json.dumps(committed["meterhouse-overview"])
    assert "toStartOfMonth(local_now)" in overview
    assert "toTimeZone($__toTime, ${tz:singlequote}) AS local_now" in overview


def test_committed_json_is_what_the_code_generates() -> None:
    differences = compare(DASHBOARD_DIR)
    assert not differences, "run `meterhouse dashboards build`:\n" + "\n".join(
        f"{d.file_name}: {d.problem}\n{d.diff}" for d in differences
    )


def test_build_check_fails_on_a_stale_file(tmp_path: Any, boards: list[Board]) -> None:
    runner = CliRunner()
    built = runner.invoke(cli, ["dashboards", "build", "--out", str(tmp_path)])
    assert built.exit_code == 0, built.output
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(rendered())
    ok = runner.invoke(cli, ["dashboards", "build", "--check", "--out", str(tmp_path)])
    assert ok.exit_code == 0, ok.output

    stale = tmp_path / boards[0].spec.file_name
    stale.write_text(stale.read_text().replace('"Credits spent this month"', '"Old title"'))
    (tmp_path / "stray.json").write_text("{}")
    failed = runner.invoke(cli, ["dashboards", "build", "--check", "--out", str(tmp_path)])
    assert failed.exit_code == 1
    assert "01-overview.json: differs" in failed.output
    assert re.search(r'^-\s+"title": "Old title"', failed.output, re.M)
    assert re.search(r'^\+\s+"title": "Credits spent this month"', failed.output, re.M)
    assert "stray.json: not generated" in failed.output
    assert write(tmp_path) == [stale]  # rebuilding rewrites only what changed


@pytest.mark.parametrize("uid", ["meterhouse-overview", "meterhouse-jobs"])
def test_dashboards_link_to_each_other(committed: dict[str, Dashboard], uid: str) -> None:
    links = committed[uid]["links"]
    assert links[0]["type"] == "dashboards" and links[0]["tags"] == ["meterhouse"]
    assert links[0]["includeVars"] and links[0]["keepTime"]
