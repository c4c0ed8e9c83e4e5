"""Statements reconcile exactly, for random events, grants, expiries and time zones."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhouse.access import tenants
from meterhouse.ledger.amounts import shown
from meterhouse.ledger.balance import account_balance, balances
from meterhouse.ledger.burndown import Consumption, burn_down
from meterhouse.ledger.errors import LedgerError
from meterhouse.ledger.grants import create_grant, grants_in_force_by
from meterhouse.ledger.statement import Scope, build_statement, issue_statement
from meterhouse.ledger.statement_html import render_html
from meterhouse.ledger.statement_render import render_csv, render_table
from meterhouse.store.base import Store
from meterhouse.store.migrations import migrate
from tests.ledger.helpers import Usage, make_account, write_usage

ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Pacific/Kiritimati",
)
MONTH = date(2026, 10, 1)
NOW = datetime(2026, 12, 15, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def month_bounds(zone: str, month: date = MONTH) -> tuple[datetime, datetime]:
    nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    start = datetime(month.year, month.month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def new_account(store: Store, zone: str) -> str:
    account = f"acct_{uuid.uuid4().hex[:10]}"
    make_account(store, account, zone)
    tenants.upsert_team(store, account, "data", "Data", actor="test", create=True)
    tenants.upsert_project(
        store, account, "etl", team_id="data", name="ETL", actor="test", create=True
    )
    return account


# Instants around the statement month: random ones, and the month's edges +- 1 ms.
@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    start, end = month_bounds(zone)
    edge = draw(st.sampled_from([start, end, start - MS, end - MS, start + MS]))
    spread = start - timedelta(days=12) + draw(st.integers(0, 56 * 86_400_000)) * MS
    return draw(st.sampled_from([edge, spread, spread, spread]))


quantities = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)
prices = st.decimals(min_value=0, max_value=5, places=9, allow_nan=False)
usage_types = st.sampled_from(["input", "output", "cache_read", "compute_seconds", "call"])


@st.composite
def usages(draw: st.DrawFn, zone: str, boundaries: tuple[datetime, ...] = ()) -> Usage:
    kind, item = draw(
        st.sampled_from(
            [("model", "gpt-4o"), ("model", "claude"), ("job", "asset"), ("api", "/v1/q")]
        )
    )
    team, project = draw(st.sampled_from([("", ""), ("data", ""), ("data", "etl")]))
    lines = tuple(
        draw(st.lists(st.tuples(usage_types, quantities, prices), min_size=0, max_size=3))
    )
    at = draw(instants(zone))
    if boundaries and draw(st.booleans()):
        at = draw(st.sampled_from(boundaries))  # exactly when a grant starts or expires
    return Usage(
        at=at,
        lines=lines,
        item=item,
        kind=kind,
        team=team,
        project=project,
        extra_credits=draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("1e-12"), Decimal(7)])),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[tuple], list[Usage]]:  # type: ignore[type-arg]
    zone = draw(st.sampled_from(ZONES))
    grants = []
    for _ in range(draw(st.integers(0, 4))):
        effective = draw(instants(zone))
        life = draw(st.one_of(st.none(), st.integers(1, 40 * 24)))
        grants.append(
            (
                draw(st.sampled_from(["plan_allowance", "top_up", "promotional"])),
                draw(st.decimals(min_value="0.000000000001", max_value=10**6, places=12)),
                effective,
                effective + timedelta(hours=life) if life else None,
                draw(st.integers(0, 3)),
            )
        )
    boundaries = tuple(t for g in grants for t in (g[2], g[3]) if t is not None)
    return zone, grants, draw(st.lists(usages(zone, boundaries), max_size=20))


def store_scenario(store: Store, scenario: tuple[str, list[tuple], list[Usage]]) -> str:  # type: ignore[type-arg]
    zone, grants, used = scenario
    account = new_account(store, zone)
    for index, (kind, amount, effective, expires, priority) in enumerate(grants):
        create_grant(
            store,
            account_id=account,
            kind=kind,
            amount=amount,
            effective_at=effective,
            expires_at=expires,
            priority=priority,
            idempotency_key=f"k{index}",
            actor="test",
        )
    if used:
        write_usage(store, account, used)
    return account


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios())
def test_statement_totals_reconcile_to_the_last_digit(
    migrated_store: Store,
    scenario: tuple[str, list[tuple], list[Usage]],  # type: ignore[type-arg]
) -> None:
    store = migrated_store
    zone, _, used = scenario
    account = store_scenario(store, scenario)
    start, end = month_bounds(zone)
    statement = build_statement(store, account, MONTH, now=NOW)

    in_month = [u for u in used if start <= u.at < end]
    assert statement.usage_total == sum((u.credits for u in in_month), Decimal(0))
    assert statement.closing_balance == (
        statement.opening_balance + statement.credit_total - statement.debit_total
    )
    assert statement.debit_total == sum((line.debit for line in statement.lines), Decimal(0))
    last = statement.lines[-1].balance if statement.lines else statement.opening_balance
    assert last == statement.closing_balance

    # The store's balance agrees with the statement at both ends of the month...
    assert account_balance(store, account, start - MS).balance == statement.opening_balance
    assert account_balance(store, account, end - MS).balance == statement.closing_balance
    assert balances(store, [account], end, inclusive=False)[account].balance == (
        statement.closing_balance
    )
    # ... and with a burn-down of every single event, computed without the store's sums.
    lots = [g.lot for g in grants_in_force_by(store, [account], end)[account]]
    each = [Consumption(u.at.astimezone(UTC), u.credits) for u in used]
    assert burn_down(lots, each, until=end, inclusive=False).balance == statement.closing_balance

    # Usage lands on the event's calendar day in the account's zone.
    per_day: dict[date, Decimal] = {}
    for usage in in_month:
        day = usage.at.astimezone(ZoneInfo(zone)).date()
        per_day[day] = per_day.get(day, Decimal(0)) + usage.credits
    stated = {day: credits for day, credits in statement.daily_usage if credits}
    assert stated == {day: credits for day, credits in per_day.items() if credits}
    assert all(line.local_date.month == MONTH.month for line in statement.lines)

    # The csv sums up to the same closing balance.
    rows = list(csv.DictReader(io.StringIO(render_csv(statement))))
    assert rows[0]["type"] == "opening" and rows[-1]["type"] == "closing"
    moved = sum(Decimal(r["credit"]) - Decimal(r["debit"]) for r in rows[1:-1])
    assert Decimal(rows[0]["balance"]) + moved == Decimal(rows[-1]["balance"])

    # A team's statement details only the team's usage, and still reconciles.
    scoped = build_statement(store, account, MONTH, scope=Scope(team="data"), now=NOW)
    assert scoped.usage_total == sum((u.credits for u in in_month if u.team == "data"), Decimal(0))
    assert scoped.usage_total + scoped.other_usage_total == statement.usage_total
    assert scoped.closing_balance == statement.closing_balance
    assert scoped.opening_balance + scoped.credit_total - scoped.debit_total == (
        scoped.closing_balance
    )


def test_a_group_shows_the_stored_unit_price_only_when_it_is_one_price(
    migrated_store: Store,
) -> None:
    store = migrated_store
    account = new_account(store, "Europe/Paris")
    day = datetime(2026, 10, 14, 9, tzinfo=UTC)
    third = Decimal("0.333333333333")
    write_usage(
        store,
        account,
        [
            Usage(day, (("input", Decimal(3), third),)),
            Usage(day + timedelta(hours=1), (("input", Decimal(7), third),)),
            Usage(day, (("output", Decimal(1), Decimal("0.5")),)),
            Usage(day + timedelta(hours=2), (("output", Decimal(1), Decimal("0.25")),)),
            Usage(day, (), kind="job", item="asset", extra_credits=Decimal("2.5")),
        ],
    )
    statement = build_statement(store, account, MONTH, now=NOW)
    lines = {(line.type, line.item, line.usage_type): line for line in statement.lines}
    uniform = lines[("usage", "gpt-4o", "input")]
    assert uniform.unit_price_credits == third and uniform.quantity == 10
    assert uniform.debit == Decimal("3.333333333330")  # 3 x and 7 x, not 10 x a rounded mean
    mixed = lines[("usage", "gpt-4o", "output")]
    assert mixed.unit_price_credits is None and mixed.unit_price_varies
    assert mixed.debit == Decimal("0.75")
    adjustment = lines[("adjustment", "asset", "")]
    assert adjustment.debit == Decimal("2.5")  # an event without lines still counts
    assert statement.usage_total == Decimal("6.58333333333")


def test_a_late_event_revises_an_issued_statement(migrated_store: Store) -> None:
    store = migrated_store
    account = new_account(store, "America/New_York")
    october = datetime(2026, 10, 10, 15, tzinfo=UTC)
    write_usage(store, account, [Usage(october, (("call", Decimal(1), Decimal(4)),), kind="api")])
    first = build_statement(store, account, MONTH, now=NOW)
    assert first.revision is None
    assert issue_statement(store, first, actor="test")
    same = build_statement(store, account, MONTH, now=NOW)
    assert same.revision is not None and not same.revision.revised
    assert not issue_statement(store, same, actor="test")  # identical: not issued twice

    # A late event of October (arrives in December) lands in October and revises it.
    write_usage(store, account, [Usage(october, (("call", Decimal(1), Decimal(6)),), kind="api")])
    revised = build_statement(store, account, MONTH, now=NOW)
    assert revised.revision is not None and revised.revision.revised
    assert revised.revision.previous.totals.debit_total == 4
    assert revised.usage_total == 10
    assert "REVISED" in render_table(revised) and "REVISED" in render_html(revised)
    assert revised.to_dict()["revision"]["previous_usage_debits"] == "4"
    assert issue_statement(store, revised, actor="test")
    settled = build_statement(store, account, MONTH, now=NOW)
    assert settled.revision is not None and not settled.revision.revised
    assert "REVISED" not in render_table(settled)


def test_a_month_in_progress_is_a_preview_and_cannot_be_issued(migrated_store: Store) -> None:
    store = migrated_store
    account = new_account(store, "UTC")
    statement = build_statement(store, account, MONTH, now=datetime(2026, 10, 20, tzinfo=UTC))
    assert not statement.complete and "in progress" in render_table(statement)
    with pytest.raises(LedgerError, match="not over yet"):
        issue_statement(store, statement, actor="test")
    with pytest.raises(LedgerError, match="has not begun"):
        build_statement(store, account, date(2027, 1, 1), now=NOW)
    with pytest.raises(LedgerError, match="no team ghost"):
        build_statement(store, account, MONTH, scope=Scope(team="ghost"), now=NOW)


class _Checker(HTMLParser):
    """Fails on any element closed out of order; collects the text."""

    VOID = frozenset({"meta", "br", "img", "hr", "input", "link"})
    SVG_EMPTY = frozenset({"line", "rect", "path", "circle"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in self.VOID | self.SVG_EMPTY, tag

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_statement_is_well_formed_escaped_and_shows_the_totals(
    migrated_store: Store,
) -> None:
    store = migrated_store
    account = new_account(store, "Asia/Tokyo")
    start, end = month_bounds("Asia/Tokyo")
    create_grant(
        store,
        account_id=account,
        kind="promotional",
        amount=Decimal(100),
        effective_at=start + timedelta(days=1),
        expires_at=start + timedelta(days=9),
        idempotency_key="promo",
        description='<script>alert("x")</script> & co',
        actor="test",
    )
    write_usage(
        store,
        account,
        [
            Usage(
                start + timedelta(days=d, hours=3),
                (("input", Decimal(1000 * d), Decimal("0.001")),),
            )
            for d in range(1, 20)
        ],
    )
    statement = build_statement(store, account, MONTH, now=NOW)
    page = render_html(statement)
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert {"summary", "lines"} <= checker.ids
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<rect ") == 31 and "<svg" in page  # one bar per day of October
    text = " ".join(checker.text)
    for total in (
        statement.opening_balance,
        statement.credit_total,
        statement.usage_total,
        statement.expired_total,
        statement.closing_balance,
    ):
        assert shown(total, 2) in text
    assert statement.expired_total > 0 and "Expired unused credits" in text
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert json.loads(json.dumps(statement.to_dict()))["summary"]["closing_balance"]
    assert end > start


def test_the_server_backend_gives_the_same_balance_and_statement(
    make_store: Callable[..., Store],
) -> None:
    """The queries' parameters (nested arrays of times) bind the same over HTTP."""
    outputs = []
    for backend in ("chdb", "server"):
        store = make_store(backend, f"t_ledger_backends_{backend}_{uuid.uuid4().hex[:6]}")
        migrate(store)
        make_account(store, "acme", "Europe/Paris")
        start, _ = month_bounds("Europe/Paris")
        create_grant(
            store,
            account_id="acme",
            kind="plan_allowance",
            amount=Decimal(100),
            effective_at=start,
            expires_at=start + timedelta(days=10),
            idempotency_key="a",
            actor="test",
        )
        write_usage(
            store,
            "acme",
            [
                Usage(start + timedelta(days=d), (("input", Decimal(1000), Decimal("0.004")),))
                for d in (0, 3, 12)
            ],
        )
        statement = build_statement(store, "acme", MONTH, now=NOW).to_dict()
        statement.pop("generated_at")
        outputs.append((account_balance(store, "acme", NOW).to_dict(), statement))
    assert outputs[0] == outputs[1]
    assert outputs[0][0]["expired"] == Decimal(92)
