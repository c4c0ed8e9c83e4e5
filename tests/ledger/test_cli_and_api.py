"""The ledger through the real console script and a real `meterhouse run`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.ledger.helpers import usage_insert_sql
from tests.support.cli import meterhouse, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("ledger_cli") / "store"
    for args in (
        ("migrate",),
        ("accounts", "create", "acme", "--time-zone", "Europe/Paris"),
        ("teams", "create", "--account", "acme", "data"),
    ):
        done = meterhouse(data, *args)
        assert done.returncode == 0, done.stderr
    return data


def test_grants_balance_budgets_and_statement_from_the_command_line(data_dir: Path) -> None:
    add = ("grants", "add", "--account", "acme", "--kind", "top_up", "--amount", "500")
    first = meterhouse(data_dir, *add, "--key", "pay_1", "--format", "json")
    assert first.returncode == 0, first.stderr
    again = meterhouse(data_dir, *add, "--key", "pay_1")
    assert again.returncode == 0 and "nothing credited again" in again.stderr
    bad = meterhouse(data_dir, *add[:-1], "five hundred", "--key", "pay_2")
    assert bad.returncode == 1 and "not a number of credits" in bad.stderr

    used_at = datetime.now(UTC) - timedelta(seconds=2)
    insert = meterhouse(
        data_dir,
        "sql",
        "--write",
        usage_insert_sql("acme", used_at, "120.5", zone="Europe/Paris", team="data"),
    )
    assert insert.returncode == 0, insert.stderr

    balance = meterhouse(data_dir, "balance", "--account", "acme", "--format", "json")
    assert balance.returncode == 0, balance.stderr
    parts = json.loads(balance.stdout)
    assert (parts["granted"], parts["consumed"], parts["balance"]) == ("500", "120.5", "379.5")
    listed = meterhouse(data_dir, "grants", "list", "--account", "acme", "--format", "json")
    assert [g["remaining"] for g in json.loads(listed.stdout)] == ["379.5"]

    budget = meterhouse(
        data_dir, "budgets", "set", "--account", "acme", "--amount", "100", "--every-month"
    )
    assert budget.returncode == 0, budget.stderr
    status = meterhouse(data_dir, "budgets", "status", "--account", "acme", "--format", "json")
    row = json.loads(status.stdout)[0]
    assert (row["used"], row["used_pct"], row["crossed"]) == ("120.5000", 1.205, [0.5, 0.8, 1.0])

    month = used_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m")
    page = data_dir.parent / "statement.html"
    statement = meterhouse(
        data_dir,
        "statement",
        "--account",
        "acme",
        "--month",
        month,
        "--format",
        "html",
        "-o",
        str(page),
    )
    assert statement.returncode == 0, statement.stderr
    assert "379.50" in page.read_text() and "gpt-4o" in page.read_text()
    early = meterhouse(data_dir, "statement", "--account", "acme", "--month", month, "--issue")
    assert early.returncode == 1 and "not over yet" in early.stderr
    table = meterhouse(
        data_dir, "statement", "--account", "acme", "--month", month, "--team", "data"
    )
    assert table.returncode == 0 and "Usage (team data)" in table.stdout


def test_read_api_gauges_and_cli_reads_through_the_running_service(data_dir: Path) -> None:
    with running_service(data_dir, MH_LEDGER_METRICS_REFRESH_SECONDS="1") as service:
        headers = {"Authorization": f"Bearer {service.admin_token}"}
        url = f"{service.url}/api/v1/accounts/acme"
        answer = requests.get(f"{url}/balance", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["balance"] == "379.5"
        assert requests.get(f"{url}/balance", timeout=30).status_code == 401
        wrong = requests.get(f"{url}/balance", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
        ghost = requests.get(
            f"{service.url}/api/v1/accounts/ghost/balance", headers=headers, timeout=30
        )
        assert ghost.status_code == 404 and "no account ghost" in ghost.json()["detail"]
        bad = requests.get(
            f"{url}/statement", params={"month": "2026-13"}, headers=headers, timeout=30
        )
        assert bad.status_code == 400 and "YYYY-MM" in bad.json()["detail"]
        csv_text = requests.get(
            f"{url}/statement", params={"format": "csv"}, headers=headers, timeout=30
        )
        assert csv_text.status_code == 200 and csv_text.headers["content-type"].startswith(
            "text/csv"
        )
        assert csv_text.text.splitlines()[-1].split(",")[-2] == "379.5"

        deadline = time.monotonic() + 20
        metrics = ""
        while 'meterhouse_account_balance_credits{account="acme"}' not in metrics:
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.3)
            # Per-account series need the admin (or metrics) token (docs/access.md).
            metrics = requests.get(f"{service.url}/metrics", headers=headers, timeout=10).text
        assert 'meterhouse_account_balance_credits{account="acme"} 379.5' in metrics
        assert (
            'meterhouse_budget_used_ratio{account="acme",scope="account",scope_id="acme"} 1.205'
            in metrics
        )
        assert "meterhouse_ledger_metrics_refresh_ok 1.0" in metrics

        # The store is held by the service: reads go through its API.
        balance = meterhouse(data_dir, "balance", "--account", "acme", "--format", "json")
        assert balance.returncode == 0, balance.stderr
        assert json.loads(balance.stdout)["balance"] == "379.5"
        table = meterhouse(data_dir, "statement", "--account", "acme")
        assert table.returncode == 0 and "Closing balance" in table.stdout
