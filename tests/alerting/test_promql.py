"""Every PromQL expression, of the alert rules and of the dashboards, on a real Prometheus.

The Prometheus of the shared stack scrapes a running `meterhouse run`. Each expression must
parse and evaluate (an empty result is fine for series not produced yet; an error is not),
and each rule must load and evaluate without error in the rule manager.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from meterhouse.dashboards.macros import QueryContext, Variable, interpolate
from tests.alerting.stack import RULES_DIR, Stack, wait_until

REPO = Path(__file__).resolve().parents[2]
# slow: the shared stack runs `meterhouse demo` and `meterhouse run` in subprocesses.
pytestmark = pytest.mark.slow
# What Grafana would use: a 1 hour range, 15 s scrape interval (the data source's
# timeInterval in grafana/provisioning), a 15 s query interval.
SCRAPE = timedelta(seconds=15)
INTERVAL = timedelta(seconds=15)
RATE_INTERVAL = max(INTERVAL + SCRAPE, 4 * SCRAPE)


def rule_expressions() -> dict[str, str]:
    found = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                found[f"{path.name}: {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return found


def dashboard_expressions() -> dict[str, str]:
    """Prometheus targets of the committed dashboards, interpolated as Grafana does."""
    end = datetime.now(UTC)
    ctx = QueryContext(
        end - timedelta(hours=1), end, INTERVAL, {"account": Variable("account", "e2e")}
    )
    found = {}
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] != "prometheus":
                    continue
                expr = target["expr"].replace(
                    "$__rate_interval", f"{int(RATE_INTERVAL.total_seconds())}s"
                )
                found[f"{path.name}: {panel['title']} {target['refId']}"] = interpolate(expr, ctx)
    return found


RULES = rule_expressions()
PANELS = dashboard_expressions()


def test_expressions_were_found() -> None:
    assert len(RULES) >= 15
    assert len(PANELS) >= 15
    assert not [name for name, expr in PANELS.items() if "$" in expr], "uninterpolated variables"


@pytest.mark.prometheus
@pytest.mark.parametrize("name", sorted(RULES) + sorted(PANELS))
def test_expression_evaluates(stack: Stack, name: str) -> None:
    expr = RULES.get(name) or PANELS[name]
    answer = stack.query(expr)
    assert answer.get("status") == "success", f"{name}: {answer.get('error')}\n{expr}"
    assert answer["data"]["resultType"] in ("vector", "scalar", "matrix")


@pytest.mark.prometheus
def test_some_expressions_have_data(stack: Stack) -> None:
    """The stack really serves meterhouse's series: not every expression comes back empty."""
    wait_until(lambda: stack.query("meterhouse_jobs_active")["data"]["result"], 40, "jobs gauges")
    with_data = [
        name for name, expr in {**RULES, **PANELS}.items() if stack.query(expr)["data"]["result"]
    ]
    assert any("Targets down" in name for name in with_data), with_data
    assert len(with_data) >= 3, with_data


@pytest.mark.prometheus
def test_every_rule_loads_and_evaluates_cleanly(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = stack_rules(stack)
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

    rules = wait_until(evaluated, 45, "every rule to be evaluated once")
    names = {rule["name"] for rule in rules}
    assert names == {name.split(": ", 1)[1] for name in RULES}
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] == "err"}
    assert not broken


def stack_rules(stack: Stack) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.prometheus_url}/api/v1/rules", timeout=5).json()
    groups: list[dict[str, Any]] = answer["data"]["groups"]
    return groups


# Series `meterhouse run` exports whatever is in its store: if a producer renames one, the
# rules and panels that read it would silently go quiet.
ALWAYS_EXPORTED = (
    "meterhouse_job_runs_total",
    "meterhouse_job_runs_stuck",
    "meterhouse_jobs_metrics_refreshed_timestamp_seconds",
    "meterhouse_ingest_insert_errors_total",
    "meterhouse_ingest_insert_seconds_bucket",
    "meterhouse_ingest_requests_rejected_total",
    "meterhouse_ledger_metrics_refresh_ok",
    "meterhouse_ledger_metrics_refreshed_timestamp_seconds",
    "meterhouse_account_balance_credits",
    "meterhouse_notification_attempts_total",
)


@pytest.mark.prometheus
@pytest.mark.parametrize("metric", ALWAYS_EXPORTED)
def test_series_the_rules_read_are_exported(stack: Stack, metric: str) -> None:
    wait_until(lambda: stack.query(metric)["data"]["result"], 40, f"{metric} to be scraped")
