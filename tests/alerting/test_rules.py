"""The alert rules: promtool accepts them, unit tests cover every one, each has a runbook.

promtool and amtool come from the Debian packages CI installs (prometheus,
prometheus-alertmanager); without them these tests fail rather than skip.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerting.stack import ALERTMANAGER_CONFIG, RULES_DIR, binary
from tests.support.cli import meterhouse

REPO = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO / "prometheus" / "tests"
ALERTS_DOC = REPO / "docs" / "alerts.md"
DASHBOARDS_DOC = REPO / "docs" / "dashboards.md"
RUNBOOK_BASE = "docs/alerts.md#"
SEVERITIES = {"critical", "warning", "info"}
METRIC = re.compile(r"\b(meterhouse_[a-z0-9_]+|up|ALERTS)\b")


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert len(files) >= 4
    result = run([binary("promtool", "prometheus"), "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    files = sorted(str(p) for p in TESTS_DIR.glob("*.yml"))
    result = run([binary("promtool", "prometheus"), "test", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


@pytest.mark.prometheus
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation is reported: the unit tests are not vacuous."""
    source = TESTS_DIR / "credits_test.yml"
    broken = tmp_path / "broken_test.yml"
    text = source.read_text(encoding="utf-8").replace(
        "../rules/credits.yml", str(RULES_DIR / "credits.yml")
    )
    broken.write_text(text.replace("severity: critical", "severity: page", 1), encoding="utf-8")
    result = run([binary("promtool", "prometheus"), "test", "rules", str(broken)])
    assert result.returncode != 0
    assert "MeterhouseCreditBalanceExhausted" in result.stdout + result.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    covered_files: set[str] = set()
    for path in sorted(TESTS_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        covered_files |= {Path(f).name for f in data["rule_files"]}
        for test in data["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts without a test that makes them fire"
    assert names - quiet == set(), "alerts without a test that keeps them quiet"
    assert covered_files == {p.name for p in RULES_DIR.glob("*.yml")}


def test_every_alert_has_severity_summary_and_runbook() -> None:
    doc_anchors = anchors(ALERTS_DOC.read_text(encoding="utf-8"))
    rules = alert_rules()
    assert len(rules) >= 15
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        url = annotations["runbook_url"]
        assert url == RUNBOOK_BASE + name.lower(), f"{name}: runbook_url {url}"
        assert name.lower() in doc_anchors, f"{name}: no runbook heading in docs/alerts.md"


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    required = {
        "MeterhouseCreditBalanceLow",
        "MeterhouseBudget50PercentUsed",
        "MeterhouseBudget80PercentUsed",
        "MeterhouseBudgetExceeded",
        "MeterhouseBudgetForecastOverBudget",
        "MeterhouseJobFailureRateHigh",
        "MeterhouseJobRunsStuck",
        "MeterhouseStripeSyncStale",
        "MeterhouseReconciliationIssues",
        "MeterhouseIngestRejectsHigh",
        "MeterhouseSpoolGrowing",
        "MeterhouseStoreInsertErrors",
        "MeterhouseUnpricedEvents",
    }
    assert required <= names, required - names


def test_metrics_read_are_documented() -> None:
    """Metric names the rules and dashboards depend on are written down (the contract)."""
    alerts_doc = ALERTS_DOC.read_text(encoding="utf-8")
    for rule in alert_rules():
        for metric in METRIC.findall(rule["expr"]):
            assert f"`{metric}" in alerts_doc, f"{rule['alert']}: {metric} not in docs/alerts.md"
    dashboards_doc = DASHBOARDS_DOC.read_text(encoding="utf-8")
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                for metric in METRIC.findall(target.get("expr", "")):
                    base = re.sub(r"_(bucket|total)$", "", metric)
                    assert f"`{base}" in dashboards_doc, f"{path.name}: {metric} undocumented"


RENDER_ENV = {
    "MH_ALERTS_RECEIVER_URL": "http://meterhouse:8080/api/v1/alerts/webhook",
    "MH_ALERTS_WEBHOOK_TOKEN": 't0ken-with-"quotes"-and-\\',
    "MH_OPERATOR_EMAIL": "oncall@platform.example",
    "MH_SMTP_HOST": "smtp.platform.example",
    "MH_SMTP_PORT": "587",
    "MH_SMTP_FROM": "alerts@platform.example",
}


@pytest.fixture(scope="module")
def rendered_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alertmanager.yml as `meterhouse notify alertmanager-config` fills it."""
    out = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    done = meterhouse(out.parent, "notify", "alertmanager-config", "-o", str(out), **RENDER_ENV)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.prometheus
def test_amtool_check_config(rendered_config: Path) -> None:
    result = run(
        [binary("amtool", "prometheus-alertmanager"), "check-config", str(rendered_config)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_fills_only_addresses_ports_and_secrets(rendered_config: Path) -> None:
    """Everything but the ${MH_…} placeholders is the shipped file, byte for byte."""
    shipped = ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    rendered = rendered_config.read_text(encoding="utf-8")
    pattern = re.escape(shipped)
    pattern = re.sub(r"\\\$\\\{MH_[A-Z_]+\\\}", ".*?", pattern)
    assert re.fullmatch(pattern, rendered, re.S)
    assert "example.invalid" not in shipped and "FILL IN" not in shipped
    config = yaml.safe_load(rendered)
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert {h["url"] for h in hooks} == {RENDER_ENV["MH_ALERTS_RECEIVER_URL"]}
    assert {h["http_config"]["authorization"]["credentials"] for h in hooks} == {
        RENDER_ENV["MH_ALERTS_WEBHOOK_TOKEN"]
    }
    assert config["global"]["smtp_smarthost"] == "smtp.platform.example:587"


def test_rendering_refuses_missing_values(tmp_path: Path) -> None:
    env = {k: v for k, v in RENDER_ENV.items() if k != "MH_ALERTS_WEBHOOK_TOKEN"}
    done = meterhouse(tmp_path, "notify", "alertmanager-config", **env)
    assert done.returncode != 0
    assert "MH_ALERTS_WEBHOOK_TOKEN" in done.stderr


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # About one account: its channels through meterhouse; critical ones also e-mail
        # the operators.
        (
            ["alertname=MeterhouseBudgetExceeded", "severity=critical", "account=acme"],
            "operators-email,meterhouse",
        ),
        (
            ["alertname=MeterhouseBudget80PercentUsed", "severity=warning", "account=acme"],
            "meterhouse",
        ),
        (["alertname=MeterhouseJobRunFailed", "severity=warning", "account=acme"], "meterhouse"),
        # About the platform: the operators (e-mail from Alertmanager, and their channels).
        (["alertname=MeterhouseServiceDown", "severity=critical"], "operators"),
        (["alertname=MeterhouseBudget50PercentUsed", "severity=info"], "operators"),
        (["alertname=SomethingElse"], "operators"),
    ],
)
def test_alertmanager_routes_by_account_and_severity(
    rendered_config: Path, labels: list[str], receivers: str
) -> None:
    result = run(
        [
            binary("amtool", "prometheus-alertmanager"),
            "config",
            "routes",
            "test",
            f"--config.file={rendered_config}",
            f"--verify.receivers={receivers}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
