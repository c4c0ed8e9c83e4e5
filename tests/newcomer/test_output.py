"""Items 6 and 7 of issue 15: output programs can use, tables people can read, no secrets.

Run in this process on this test's own database; the data goes in through the real write
path (tests/jobs/helpers.py) and the CLI itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import click
import pytest

from meterhouse.cli import cli
from meterhouse.store.base import Store
from tests.jobs.helpers import definition, log_line, run_event, write
from tests.ledger.helpers import usage_insert_sql
from tests.newcomer.conftest import Run


@pytest.fixture
def acme(run: Run) -> Run:
    assert run("accounts", "create", "acme").exit_code == 0
    return run


def test_budget_status_gives_fractions_and_lists(acme: Run) -> None:
    now = datetime.now(UTC) - timedelta(seconds=5)
    assert acme("sql", "--write", usage_insert_sql("acme", now, "810")).exit_code == 0
    made = acme("budgets", "set", "--account", "acme", "--amount", "1000", "--every-month")
    assert made.exit_code == 0, made.output
    done = acme("budgets", "status", "--account", "acme", "--format", "json")
    assert done.exit_code == 0, done.output
    (row,) = json.loads(done.stdout)
    assert row["used_pct"] == pytest.approx(0.81)
    assert row["thresholds"] == [0.5, 0.8, 1.0]
    assert row["crossed"] == [0.5, 0.8]
    assert isinstance(row["forecast_pct"], float)
    assert Decimal(row["used"]) == Decimal(810) and isinstance(row["used"], str)
    table = acme("budgets", "status", "--account", "acme").stdout
    assert "81.0%" in table and "50%,80%" in table


def test_durations_are_seconds_and_times_carry_their_offset(
    acme: Run, migrated_store: Store
) -> None:
    began = datetime.now(UTC) - timedelta(days=2)
    events = [definition("acme", "acme-nightly", "asset", at=began - timedelta(hours=1))]
    events.append(run_event("acme", "acme-nightly", "r1", "asset", "running", began))
    events += [
        log_line("acme", "acme-nightly", "r1", "asset", began + timedelta(minutes=i), "error", "m")
        for i in range(3)
    ]
    write(migrated_store, events)
    stuck = acme("jobs", "stuck", "--format", "json")
    assert stuck.exit_code == 0, stuck.output
    (row,) = json.loads(stuck.stdout)
    assert isinstance(row["running_for"], (int, float)) and row["running_for"] > 2 * 86_400 - 60
    assert datetime.fromisoformat(row["started_at"]).utcoffset() == timedelta(0)
    assert "2d" in acme("jobs", "stuck").stdout  # people read 2d 0h 1m

    listed = acme("events", "--level", "error", "--since", "3d", "--limit", "2", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 2
    assert "more match" in listed.stderr and "--limit" in listed.stderr
    whole = acme("events", "--level", "error", "--since", "3d", "--limit", "3", "--format", "json")
    assert len(json.loads(whole.stdout)) == 3 and "more match" not in whole.stderr


def test_settings_json_has_typed_values_and_masks_passwords(run: Run) -> None:
    url = "https://mh:s3cret@clickhouse.example:8443/prod"
    done = run("settings", "--format", "json", MH_CLICKHOUSE_URL=url, MH_STRIPE_API_KEY="sk_x1")
    assert done.exit_code == 0, done.output
    values = {row["variable"]: row["value"] for row in json.loads(done.stdout)}
    defaults = {row["variable"]: row["default"] for row in json.loads(done.stdout)}
    assert values["MH_PORT"] == 8080 and defaults["MH_SQL_MAX_ROWS"] == 100_000
    assert isinstance(values["MH_CLICKHOUSE_DATABASE"], str)
    assert not values["MH_CLICKHOUSE_DATABASE"].startswith('"')
    assert values["MH_LOG_LEVEL"] == "warning"
    assert values["MH_CLICKHOUSE_URL"] == "https://mh:***@clickhouse.example:8443/prod"
    assert values["MH_STRIPE_API_KEY"] == "***"
    table = run("settings", MH_CLICKHOUSE_URL=url).stdout
    assert "s3cret" not in done.stdout and "s3cret" not in table
    assert "mh:***@clickhouse.example" in table


def test_keys_create_speaks_json(acme: Run) -> None:
    done = acme("keys", "create", "--source", "platform.prod", "--format", "json")
    assert done.exit_code == 0, done.output
    (key,) = json.loads(done.stdout)
    assert key["token"].startswith("mh_") and key["key_id"]
    revoked = acme("keys", "revoke", key["key_id"], "--format", "json")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)[0]["key_id"] == key["key_id"]


def test_tables_right_align_numbers_at_the_columns_scale(run: Run) -> None:
    done = run(
        "sql",
        "SELECT name, toDecimal64(v, 12) AS credits, n FROM values("
        "'name String, v Float64, n UInt32', ('a', 14428.8792, 7), ('bb', 3.5, 1234))",
    )
    assert done.exit_code == 0, done.output
    header, _rule, first, second = done.stdout.splitlines()[:4]
    assert "14428.879200000000" not in done.stdout
    assert first.split() == ["a", "14428.8792", "7"]
    assert second.split() == ["bb", "3.5000", "1234"]
    # Right-aligned: the numbers' last digits line up under their headers' ends.
    assert first.index("14428.8792") + len("14428.8792") == header.index("credits") + 7
    assert first.endswith("   7") and second.endswith("1234") and len(first) == len(second)
    as_json = json.loads(run("sql", "SELECT toDecimal64(2.5, 4) AS c", "--format", "json").stdout)
    assert Decimal(as_json[0]["c"]) == Decimal("2.5") and isinstance(as_json[0]["c"], str)


# Commands whose output is not data: a long-running service, a demo that prints an overview
# for people (its data is then in the store, for `sql --format json`), files written, and
# one-time passwords that must not end up in a script's log; `spool inspect` always
# prints JSON, `spool replay` moves a file back into the spool.
NOT_DATA = {
    "run",
    "demo",
    "dashboards build",
    "dashboards custom render",  # always Grafana's dashboard JSON
    "users sync-clickhouse",
    "compose-env",
    "notify alertmanager-config",
    "spool inspect",
    "spool replay",
}


def _leaves(command: click.Command, path: str = "") -> list[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        return [
            leaf
            for name in command.list_commands(ctx)
            for leaf in _leaves(command.get_command(ctx, name), f"{path} {name}".strip())  # type: ignore[arg-type]
        ]
    return [(path, command)]


def test_every_data_command_speaks_json() -> None:
    missing = []
    for path, command in _leaves(cli):
        formats = [p for p in command.params if p.name == "fmt"]
        choices = getattr(formats[0].type, "choices", ()) if formats else ()
        if "json" not in choices and path not in NOT_DATA:
            missing.append(path)
    assert missing == []


def test_migrate_speaks_json(run_unmigrated: Run) -> None:
    done = run_unmigrated("migrate", "--format", "json")
    assert done.exit_code == 0, done.output
    applied = json.loads(done.stdout)[0]["applied"]
    assert applied[0] == "0001_tenants.sql"
    again = json.loads(run_unmigrated("migrate", "--format", "json").stdout)
    assert again == [{"applied": []}]
    status = json.loads(run_unmigrated("migrate", "--status", "--format", "json").stdout)
    assert {row["state"] for row in status} == {"applied"}


def test_numbers_other_modules_made_text_are_right_aligned_too() -> None:
    from meterhouse.cli.output import render_rows

    table = render_rows(
        ["account", "credits", "used"],
        [["acme", "557.38", "5.6%"], ["globex", "12,345.6", "n/a"], ["x1", "-", "42%"]],
        "table",
    ).splitlines()
    assert table[2] == "acme       557.38  5.6%"
    assert table[3] == "globex   12,345.6   n/a"
