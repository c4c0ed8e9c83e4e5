"""Custom dashboards: the examples of docs/dashboards.md validate (every query runs on the
demo), render, and sync into the account's folder of a checking Grafana-shaped server; a
broken file gets errors naming the line and the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from meterhouse.access.grafana_sync import GrafanaError, put_dashboard, sync_grafana
from meterhouse.cli import cli
from meterhouse.dashboards import custom
from meterhouse.store.base import Store
from tests.access.fake_grafana import fake_grafana
from tests.dashboards.engine import END, load_demo

REPO = Path(__file__).resolve().parents[2]
TOKEN = "glsa_custom_dashboards_1"


def doc_examples() -> list[str]:
    text = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    section = text[text.index("## Custom dashboards per team") :]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def test_the_documented_examples_validate_render_and_sync(
    migrated_store: Store, tmp_path: Path
) -> None:
    store = migrated_store
    load_demo(store, scale=0.25)
    examples = doc_examples()
    assert len(examples) == 2
    with fake_grafana(TOKEN) as (url, state):
        for email in store.query("SELECT DISTINCT email FROM users").column("email"):
            state.add_user(str(email))
        sync_grafana(store, url, TOKEN, actor="test")  # the accounts' folders
        for index, text in enumerate(examples):
            board = custom.parse(text, f"example{index}.yaml")
            # The data team's board (acme) has demo data behind every panel; the on-call
            # board's stuck runs are empty on the demo (only acme has a stuck run).
            assert custom.validate(store, board, now=END, rows_expected=index == 0) >= 4
            path = tmp_path / f"example{index}.yaml"
            path.write_text(text, encoding="utf-8")
            out = tmp_path / f"example{index}.json"
            rendered = CliRunner().invoke(
                cli, ["dashboards", "custom", "render", str(path), "--out", str(out)]
            )
            assert rendered.exit_code == 0, rendered.output
            dashboard = json.loads(out.read_text(encoding="utf-8"))
            assert dashboard == custom.build(board).dashboard
            assert dashboard["schemaVersion"] == 42 and dashboard["uid"] == board.uid
            fixed = dashboard["templating"]["list"][0]
            assert (fixed["name"], fixed["query"]) == ("account", board.account)
            argv = ["dashboards", "custom", "sync", str(path), "--url", url, "--token", TOKEN]
            first = CliRunner().invoke(cli, argv)
            assert first.exit_code == 0, first.output
            assert f"{board.uid}: created in the folder of {board.account}" in first.output
            again = CliRunner().invoke(cli, argv)
            assert "unchanged" in again.output, again.output
            stored = state.dashboards[board.uid]
            assert stored["meta"]["folderUid"] == f"mh-{board.account}"
            assert stored["dashboard"]["panels"] == dashboard["panels"]
    assert not state.problems
    first_board = custom.parse(examples[0])
    thresholds = next(
        p
        for p in custom.build(first_board).dashboard["panels"]
        if p["title"] == "Credits spent this month"
    )["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert thresholds[-1] == {"value": 40000.0, "color": "red"}


def test_sync_needs_the_account_folder() -> None:
    board = custom.parse(doc_examples()[1])
    with fake_grafana(TOKEN) as (url, state), pytest.raises(GrafanaError, match="sync-grafana"):
        put_dashboard(url, TOKEN, board.account, custom.build(board).dashboard)
    assert not state.dashboards


BROKEN = """title: Broken
account: acme
rows:
  - title: Spend
    widgets:
      - panel: overview/credits-spent-this-month
        width: 30
      - panel: overview/no-such-panel
      - panel: usage-statement/statement
        thresholds: [{color: green}]
        colour: red
variables:
  tem: data
"""


def test_a_broken_file_gets_errors_naming_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(custom.CustomError) as raised:
        custom.parse(BROKEN, "team.yaml")
    problems = raised.value.problems
    assert "team.yaml:7: rows[0].widgets[0].width: must be from 1 to 24, got 30" in problems
    assert any(p.startswith("team.yaml:8: rows[0].widgets[1].panel: no panel") for p in problems)
    assert any(
        p.startswith("team.yaml:10: rows[0].widgets[2].thresholds: only stat") for p in problems
    )
    assert any(
        p.startswith("team.yaml:11: rows[0].widgets[2].colour: unknown key") for p in problems
    )
    assert any(p.startswith("team.yaml:13: variables.tem: unknown key") for p in problems)
    path = tmp_path / "team.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = CliRunner().invoke(cli, ["dashboards", "custom", "render", str(path)])
    assert result.exit_code == 1
    assert "team.yaml:7: rows[0].widgets[0].width" in result.output
    not_yaml = CliRunner().invoke(cli, ["dashboards", "custom", "render", str(tmp_path / "x")])
    assert not_yaml.exit_code == 1 and "cannot read" in not_yaml.output
