"""The foundation's promises, through the real console script and a real service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.cli import meterhouse, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

TABLES_SQL = "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"
CORE_TABLES = {
    "accounts",
    "teams",
    "projects",
    "users",
    "usage_events",
    "usage_daily",
    "credit_grants",
    "budgets",
    "jobs",
    "job_runs",
    "job_logs",
    "model_prices",
    "stripe_customers",
    "reconciliation_issues",
    "audit_log",
    "schema_migrations",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli") / "store"


def test_migrate_then_sql_lists_schema_and_migrate_twice_changes_nothing(data_dir: Path) -> None:
    first = meterhouse(data_dir, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = meterhouse(data_dir, "migrate")
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout
    listed = meterhouse(data_dir, "sql", TABLES_SQL, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert names >= CORE_TABLES
    status = meterhouse(data_dir, "migrate", "--status")
    assert "pending" not in status.stdout and "0001_tenants.sql" in status.stdout


def test_accounts_teams_projects_round_trip_and_are_audited(data_dir: Path) -> None:
    created = meterhouse(
        data_dir,
        "accounts",
        "create",
        "acme",
        "--organisation",
        "Acme Ltd",
        "--time-zone",
        "Europe/Paris",
        "--plan",
        "pro",
        "--custom-instructions",
        "Answer in French",
        "--format",
        "json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)[0]["time_zone"] == "Europe/Paris"
    again = meterhouse(data_dir, "accounts", "create", "acme")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad_tz = meterhouse(data_dir, "accounts", "update", "acme", "--time-zone", "Mars/Olympus")
    assert bad_tz.returncode == 1 and "unknown time zone" in bad_tz.stderr
    updated = meterhouse(
        data_dir, "accounts", "update", "acme", "--plan", "enterprise", "--format", "json"
    )
    assert json.loads(updated.stdout)[0]["plan"] == "enterprise"
    shown = json.loads(meterhouse(data_dir, "accounts", "show", "acme", "--format", "json").stdout)
    assert shown[0]["organisation"] == "Acme Ltd" and shown[0]["plan"] == "enterprise"
    assert meterhouse(data_dir, "teams", "create", "--account", "acme", "data").returncode == 0
    project = meterhouse(
        data_dir,
        "projects",
        "create",
        "--account",
        "acme",
        "churn",
        "--team",
        "data",
        "--format",
        "json",
    )
    assert json.loads(project.stdout)[0]["team_id"] == "data"
    wrong_team = meterhouse(
        data_dir, "projects", "create", "--account", "acme", "x", "--team", "nope"
    )
    assert wrong_team.returncode == 1 and "no team nope" in wrong_team.stderr
    listed = json.loads(meterhouse(data_dir, "accounts", "list", "--format", "json").stdout)
    assert [a["account_id"] for a in listed] == ["acme"]
    audit = meterhouse(
        data_dir,
        "sql",
        "SELECT action, JSONExtractString(before, 'plan') AS b, JSONExtractString(after, 'plan')"
        " AS a FROM audit_log WHERE target_id = 'acme' ORDER BY at",
        "--format",
        "json",
    )
    rows = json.loads(audit.stdout)
    assert [r["action"] for r in rows] == ["account.create", "account.update"]
    assert (rows[1]["b"], rows[1]["a"]) == ("pro", "enterprise")


def test_sql_is_read_only_unless_asked(data_dir: Path) -> None:
    refused = meterhouse(data_dir, "sql", "TRUNCATE TABLE accounts")
    assert refused.returncode == 1 and "--write" in refused.stderr
    capped = meterhouse(
        data_dir, "sql", "SELECT number FROM numbers(1000)", "--format", "json", MH_SQL_MAX_ROWS="7"
    )
    assert len(json.loads(capped.stdout)) == 7
    assert "first 7 rows" in capped.stderr
    formatted = meterhouse(data_dir, "sql", "SELECT 1 FORMAT JSON")
    assert formatted.returncode == 1 and "--format" in formatted.stderr
    from_stdin = meterhouse(data_dir, "sql", "--format", "csv", stdin="SELECT 40 + 2 AS answer")
    assert from_stdin.stdout.strip().splitlines() == ["answer", "42"]
    syntax = meterhouse(data_dir, "sql", "SELEC 1")
    assert syntax.returncode == 1 and "syntax error in the SQL" in syntax.stderr


def test_every_command_works_while_run_holds_the_store(data_dir: Path) -> None:
    with running_service(data_dir) as service:
        health = requests.get(f"{service.url}/healthz", timeout=5)
        assert health.json() == {"status": "ok"}
        listed = meterhouse(data_dir, "sql", TABLES_SQL, "--format", "json")
        assert listed.returncode == 0, listed.stderr
        assert {row["name"] for row in json.loads(listed.stdout)} >= CORE_TABLES
        # Reads and writes alike run on the service's store.
        made = meterhouse(data_dir, "accounts", "create", "held", "--format", "json")
        assert made.returncode == 0, made.stderr
        listed_accounts = meterhouse(data_dir, "accounts", "list", "--format", "json")
        assert listed_accounts.returncode == 0, listed_accounts.stderr
        assert "held" in [a["account_id"] for a in json.loads(listed_accounts.stdout)]
        unauthorized = requests.post(
            f"{service.url}/api/v1/sql", json={"sql": "SELECT 1"}, timeout=5
        )
        assert unauthorized.status_code == 401
        assert unauthorized.headers["content-type"] == "application/problem+json"
        write = meterhouse(data_dir, "sql", "TRUNCATE TABLE accounts")
        assert write.returncode == 1 and "--write" in write.stderr
    after = meterhouse(data_dir, "accounts", "list", "--format", "json")
    assert after.returncode == 0, after.stderr


def test_help_teaches(data_dir: Path) -> None:
    top = meterhouse(data_dir, "--help")
    assert "meterhouse demo" in top.stdout and "MH_" in top.stdout
    sql_help = meterhouse(data_dir, "sql", "--help")
    assert "Examples:" in sql_help.stdout
    settings = meterhouse(data_dir, "settings", "--format", "json")
    variables = {row["variable"] for row in json.loads(settings.stdout)}
    assert "MH_CLICKHOUSE_URL" in variables


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = meterhouse(tmp_path, "migrate", MH_CLICKHOUSE_URL="mysql://nope")
    assert result.returncode == 2 and "MH_CLICKHOUSE_URL must start with chdb://" in result.stderr
