"""`meterhouse prices sync`, `models list|show` and `reprice`, run as a person runs them."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest

from meterhouse.cli.context import CliContext
from meterhouse.cli.prices import models_list, models_show, prices_sync, reprice
from meterhouse.rating import Catalog
from meterhouse.settings import Settings
from tests.support.inprocess import Demo, InProcess

COUNTS = re.compile(r"(\d+) added, (\d+) closed, (\d+) updated, (\d+) unchanged")


@dataclass(frozen=True)
class Prepared:
    cli: InProcess  # `meterhouse ...` on the module's store, in this process
    demo_log: str
    sync: str


def ok(cli: InProcess, *args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def sql(cli: InProcess, query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok(cli, "sql", query, "--format", "json"))
    return rows


@pytest.fixture(scope="module")
def prepared(demo: Demo) -> Prepared:
    """The session's demo (which migrated and synced the prices), then `prices sync` again."""
    return Prepared(demo.cli, demo.log, ok(demo.cli, "prices", "sync"))


def test_the_demo_syncs_the_catalog_and_a_second_sync_changes_nothing(
    prepared: Prepared,
) -> None:
    rows = len(Catalog.load().price_rows(datetime.now(UTC))["provider"])
    assert f"model prices: {rows} rows added" in prepared.demo_log
    found = COUNTS.search(prepared.sync)
    assert found, prepared.sync
    assert tuple(int(n) for n in found.groups()) == (0, 0, 0, rows)
    assert "nothing written" in prepared.sync
    audits = sql(
        prepared.cli,
        "SELECT actor, after, (SELECT count() FROM model_prices FINAL) AS stored "
        "FROM audit_log WHERE action = 'prices.sync'",
    )
    assert len(audits) == 1  # the sync that wrote nothing recorded nothing
    assert audits[0]["actor"].startswith("cli:")
    assert json.loads(audits[0]["after"])["added"] == int(audits[0]["stored"]) == rows


def test_models_list_filters_and_shows_usage(prepared: Prepared) -> None:
    listed = json.loads(
        ok(prepared.cli, "models", "list", "--provider", "anthropic", "--format", "json")
    )
    assert listed and {m["provider"] for m in listed} == {"anthropic"}
    sonnet = next(m for m in listed if m["model_id"] == "claude-sonnet-4-0")
    assert (sonnet["input_per_mtok"], sonnet["output_per_mtok"]) == ("3", "15")
    assert sonnet["context_window"] == 200000

    used = sql(
        prepared.cli,
        "SELECT provider, item, count() AS calls FROM usage_events WHERE kind = 'model' "
        "AND event_time >= toStartOfMonth(now('UTC')) GROUP BY provider, item",
    )
    shown = {(m["provider"], m["model_id"]): m.get("calls_this_month") for m in listed}
    for row in used:
        if row["provider"] == "anthropic":
            assert int(shown[row["provider"], row["item"]]) == int(row["calls"])
    if not used:
        assert "calls_this_month" not in sonnet

    searched = ok(
        prepared.cli, "models", "list", "--search", "gpt-4o", "--no-usage", "--format", "csv"
    )
    header, *lines = searched.strip().splitlines()
    assert header.startswith("provider,model_id,name,context_window,input_per_mtok")
    assert any(line.startswith("openai,gpt-4o,") for line in lines)


def test_models_show_resolves_platform_names_and_prints_history(prepared: Prepared) -> None:
    shown = json.loads(
        ok(prepared.cli, "models", "show", "openai/gpt-4o-2024-08-06", "--format", "json")
    )
    assert (shown["model"]["provider"], shown["model"]["model_id"]) == ("openai", "gpt-4o")
    assert [h["input_mtok"] for h in shown["history"]] == ["2.5"]
    assert shown["history"][0]["effective_to"] is None

    table = ok(prepared.cli, "models", "show", "gpt-4o-2024-08-06")
    assert "model_id" in table and "price history (model_prices)" in table


def test_reprice_repairs_a_wrongly_rated_event(prepared: Prepared) -> None:
    cli = prepared.cli
    # A stored event whose credits are wrong (the rollup, fed at insert, is right).
    ok(
        cli,
        "sql",
        "--write",
        "ALTER TABLE usage_events UPDATE credits = credits + 1 WHERE event_id IN "
        "(SELECT min(event_id) FROM usage_events WHERE account_id = 'acme' AND priced)",
    )
    # Ad-hoc SQL takes no SETTINGS clause (docs/access.md): wait for the mutation instead.
    pending = (
        "SELECT count() AS n FROM system.mutations WHERE database = currentDatabase() "
        "AND table = 'usage_events' AND NOT is_done"
    )
    deadline = time.monotonic() + 60
    while int(sql(prepared.cli, pending)[0]["n"]):
        assert time.monotonic() < deadline, "the UPDATE mutation did not finish"
        time.sleep(0.2)
    sums = (
        "SELECT (SELECT sum(credits) FROM usage_events WHERE account_id = 'acme') AS e, "
        "(SELECT sum(credits) FROM usage_daily WHERE account_id = 'acme') AS d, "
        "(SELECT sum(credits) FROM usage_events WHERE account_id != 'acme') AS others, "
        "(SELECT count() FROM audit_log WHERE action = 'usage.reprice' "
        "AND startsWith(actor, 'cli:')) AS audits"
    )
    before = sql(cli, sums)[0]
    assert Decimal(before["e"]) == Decimal(before["d"]) + 1
    window = ("--account", "acme", "--from", "2020-01-01", "--to", "2100-01-01")

    dry = json.loads(ok(cli, "reprice", *window, "--dry-run", "--format", "json"))[0]
    assert (dry["dry_run"], dry["repriced"]) == (True, 1)
    done = json.loads(ok(cli, "reprice", *window, "--format", "json"))[0]
    assert (done["dry_run"], done["repriced"]) == (False, 1)
    assert Decimal(done["credits_after"]) == Decimal(done["credits_before"]) - 1

    after = sql(cli, sums)[0]
    assert after["e"] == after["d"] == done["credits_after"]
    assert after["others"] == before["others"]
    assert (before["audits"], after["audits"]) == (0, 1)  # the dry run recorded nothing


@pytest.mark.parametrize("command", [prices_sync, models_list, models_show, reprice])
def test_help_teaches(command: click.Command) -> None:
    text = command.get_help(click.Context(command, info_name=command.name))
    assert "Examples:" in text and "meterhouse " in text


@pytest.mark.parametrize(
    ("command", "args", "problem"),
    [
        (
            models_list,
            ["--provider", "nope"],
            "no provider 'nope' in the catalog; known: anthropic",
        ),
        (models_show, ["no-such-model-xyz"], "no catalog model answers to 'no-such-model-xyz'"),
        (
            reprice,
            ["--account", "acme", "--from", "2026-11-05", "--to", "2026-11-01"],
            "2026-11-01 is not after --from 2026-11-05",
        ),
    ],
)
def test_bad_input_is_named_before_the_store_is_opened(
    command: click.Command, args: list[str], problem: str, tmp_path: Path
) -> None:
    """Checked in this process: the store (a path that does not exist) is never opened."""
    settings = Settings(clickhouse_url=f"chdb://{tmp_path / 'never-opened'}")
    with pytest.raises(click.ClickException, match=re.escape(problem)):
        command.main(args, obj=CliContext(settings), standalone_mode=False)
    assert not (tmp_path / "never-opened").exists()
