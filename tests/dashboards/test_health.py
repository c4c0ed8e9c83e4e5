"""The health stat of the pipeline dashboard turns red when a scrape target is down or the
service is not scraped at all (promtool evaluates the committed expression)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.alerting.test_rules import binary, run
from tests.dashboards.conftest import DASHBOARD_DIR


def _panel(title: str) -> dict[str, Any]:
    board = json.loads((DASHBOARD_DIR / "07-pipeline-health.json").read_text(encoding="utf-8"))
    return next(p for p in board["panels"] if p["title"] == title)


def test_targets_down_counts_what_is_down(tmp_path: Path) -> None:
    panel = _panel("Targets down")
    expr = panel["targets"][0]["expr"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "green"), (1, "red")]
    cases = [
        # (series, value at 1m): all up, one of two down, the service not scraped at all
        ([("up{job='meterhouse', instance='mh:8080'}", "1 1")], 0),
        (
            [
                ("up{job='meterhouse', instance='mh:8080'}", "1 1"),
                ("up{job='prometheus', instance='localhost:9090'}", "0 0"),
            ],
            1,
        ),
        ([("up{job='prometheus', instance='localhost:9090'}", "1 1")], 1),
        ([("up{job='meterhouse', instance='mh:8080'}", "0 0")], 1),
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "promql_expr_test": [
                {"expr": expr, "eval_time": "1m", "exp_samples": [{"labels": "{}", "value": want}]}
            ],
        }
        for series, want in cases
    ]
    spec = tmp_path / "health_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}), encoding="utf-8")
    result = run([binary("promtool", "prometheus"), "test", "rules", str(spec)])
    assert result.returncode == 0, result.stdout + result.stderr
