"""Item 4 of issue 15: the statement reads like a bank's, and a busy month prints short.

A busy account (six models, four job kinds, four API routes, every day of the month) that
opens the month overdrawn. The table and HTML must give totals by category and by model
or job kind, the dollar value of the credits at the plan's rate beside the providers' own
cost, 2 decimals with the currency, token prices per 1M tokens in the detail, the negative
balance marked; csv and json keep the exact values. Headless Chromium (Debian `chromium`)
prints the HTML to PDF and its pages are counted.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from meterhouse.cli import cli
from meterhouse.ledger.grants import create_grant
from meterhouse.ledger.statement import Statement, build_statement
from meterhouse.ledger.statement_formats import render
from meterhouse.store.base import Store
from tests.ledger.helpers import Usage, make_account, write_usage

ZONE = "Europe/Paris"
MONTH = date(2026, 11, 1)
NOW = datetime(2026, 12, 10, tzinfo=UTC)
PRO_RATE = Decimal(110)  # the shipped price book: plan pro, 110 credits = $1
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-0", "claude-3-5-haiku", "gemini-2.5-flash",
          "o3")  # fmt: skip
JOBS = ("asset", "scheduler", "webhook", "notification")
ROUTES = ("/v1/query", "/v1/chat", "/v1/datasets", "/v1/assets/{id}")
INPUT_PRICE = Decimal("0.000275")  # credits per input token: 275 credits per 1M tokens


def _local(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def _busy_month() -> list[Usage]:
    used = []
    for day in range(1, 31):
        for n, model in enumerate(MODELS):
            lines = (
                ("input", Decimal(20_000 + 100 * n), INPUT_PRICE),
                ("cache_read", Decimal(5_000), Decimal("0.0000275")),
                ("output", Decimal(3_000), Decimal("0.0011")),
            )
            used += [Usage(_local(day, 9 + h), lines, item=model) for h in range(2)]
        used += [
            Usage(_local(day, 3), (("compute_seconds", Decimal(300), Decimal("0.05")),),
                  item=job, kind="job")
            for job in JOBS
        ]  # fmt: skip
        used += [
            Usage(_local(day, 12), (("call", Decimal(1), Decimal("0.001")),),
                  item=route, kind="api")
            for route in ROUTES
        ]  # fmt: skip
    return used


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("statement_reading")


@pytest.fixture
def statement(migrated_store: Store) -> Statement:
    store = migrated_store
    make_account(store, "acme", ZONE, plan="pro")
    # October's usage with no grant: November opens overdrawn.
    write_usage(store, "acme", [Usage(_local(20, 10) - timedelta(days=31),
                                      (("input", Decimal(100_000), INPUT_PRICE),))])  # fmt: skip
    create_grant(
        store,
        account_id="acme",
        kind="plan_allowance",
        amount=Decimal(10_000),
        effective_at=_local(1, 0),
        expires_at=None,
        idempotency_key="allowance-2026-11",
        description="Pro plan, 2026-11",
        actor="test",
    )
    write_usage(store, "acme", _busy_month())
    return build_statement(store, "acme", MONTH, now=NOW)


def test_the_table_summarises_by_category_and_item_with_dollar_values(
    statement: Statement,
) -> None:
    assert statement.opening_balance == Decimal("-27.5")
    page = render(statement, "table")
    usage_usd = (statement.usage_total / PRO_RATE).quantize(Decimal("0.01"))
    assert "Rate: 110 credits = $1.00 (plan pro" in page
    summary, categories, items, lines = page.split("\n\n")[1:5]
    opening = next(row for row in summary.splitlines() if row.startswith("Opening balance"))
    assert opening.split() == ["Opening", "balance", "-27.50", "-$0.25", "OVERDRAWN"]
    usage = next(row for row in summary.splitlines() if row.startswith("- Usage"))
    assert usage.endswith(f"${usage_usd:,}")
    assert categories.startswith("Usage by category")
    rows = {row.split("  ")[0]: row.split() for row in categories.splitlines()[3:]}
    assert set(rows) == {"Model calls", "Job runs", "API calls", "Total"}
    assert rows["Total"][-3:-1] == [f"{statement.usage_total:,.2f}", f"${usage_usd:,}"]
    assert rows["Model calls"][2] == f"{30 * 2 * len(MODELS):,}"  # events, once per call
    # Jobs and API calls have no provider cost: the column is empty, not $0.00.
    assert len(rows["Model calls"]) == 6 and rows["Model calls"][-1].startswith("$")
    assert len(rows["Job runs"]) == len(rows["API calls"]) == 5
    assert items.startswith("Usage by model or job kind")
    assert len(items.splitlines()) == 3 + len(MODELS) + len(JOBS) + len(ROUTES) + 1
    assert "provider cost" in items.splitlines()[1]
    # Compact: one line per day and item, plus the grant, the opening and the totals.
    body = lines.splitlines()[3:]
    assert len(body) == 30 * (len(MODELS) + len(JOBS) + len(ROUTES)) + 3
    assert body[-1].split()[:6] == ["Totals", "and", "closing", "balance", "10,000.00",
                                    f"{statement.debit_total:,.2f}"]  # fmt: skip
    assert "0.000275" not in page and "USD value" in lines.splitlines()[1]
    assert re.search(r"\d\.\d{3,}", page.split("Lines:")[1]) is None  # 2 decimals


def test_the_detail_shows_token_prices_per_million_and_provider_cost(
    statement: Statement,
) -> None:
    page = render(statement, "table", detail=True)
    head = page.split("Lines:")[1].splitlines()[1]
    assert "unit price (credits)" in head and "provider cost" in head
    assert "275.0000 / 1M tokens" in page and "1,100.0000 / 1M tokens" in page
    assert "0.3000 / second" not in page and "0.0500 / second" in page
    compact = render(statement, "table")
    assert len(page.splitlines()) > len(compact.splitlines())


def test_csv_and_json_keep_exact_values_and_name_both_dollar_figures(
    statement: Statement,
) -> None:
    body = json.loads(render(statement, "json"))
    assert body["rate"]["credits_per_usd"] == "110"
    categories = body["usage_by_category"]
    assert sum(Decimal(c["credits"]) for c in categories) == statement.usage_total
    assert Decimal(body["summary"]["usd_value"]) == (statement.usage_total / PRO_RATE).quantize(
        Decimal("1e-12")
    )
    assert {c["kind"] for c in categories if c["provider_cost_usd"] is None} == {"job", "api"}
    inputs = [line for line in body["lines"] if line["usage_type"] == "input"]
    assert inputs[0]["unit_price_credits"] == "0.000275"  # per token, exact
    rows = list(csv.DictReader(io.StringIO(render(statement, "csv"))))
    assert {"usd_value", "provider_cost_usd"} <= set(rows[0]) and "usd" not in rows[0]
    jobs = [row for row in rows if row["kind"] == "job"]
    assert jobs[0]["provider_cost_usd"] == "" and Decimal(jobs[0]["usd_value"]) > 0


def _pdf_pages(html: str, path: Path) -> int:
    chromium = shutil.which("chromium")
    assert chromium, "install Debian chromium: scripts/bootstrap.sh --system"
    page = path.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    pdf = path.with_suffix(".pdf")
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--user-data-dir={path.parent / 'chromium-profile'}",
         f"--print-to-pdf={pdf}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


@pytest.mark.slow  # headless Chromium prints twice
def test_a_busy_month_prints_on_a_few_pages(statement: Statement, tmp_path: Path) -> None:
    compact = _pdf_pages(render(statement, "html"), tmp_path / "compact")
    detail = _pdf_pages(render(statement, "html", detail=True), tmp_path / "detail")
    assert 1 <= compact <= 6, (compact, detail)
    assert detail > compact  # the detail is there when asked for


def test_the_command_takes_detail(statement: Statement, migrated_store: Store,
                                  chdb_data_dir: Path) -> None:  # fmt: skip
    env = {
        "MH_CLICKHOUSE_URL": f"chdb://{chdb_data_dir}",
        "MH_CLICKHOUSE_DATABASE": migrated_store.database,
        "MH_LOG_LEVEL": "warning",
    }
    args = ["statement", "--account", "acme", "--month", "2026-11"]
    compact = CliRunner().invoke(cli, args, env=env)
    detailed = CliRunner().invoke(cli, [*args, "--detail"], env=env)
    assert compact.exit_code == detailed.exit_code == 0, compact.output + detailed.output
    assert "OVERDRAWN" in compact.stdout and "/ 1M tokens" in detailed.stdout
    assert "/ 1M tokens" not in compact.stdout
