"""The usage statement: a bank-account statement for credits, one calendar month.

Opening balance, then in time order every grant (a credit line), the consumption grouped
per local day, item and usage type (debit lines), each expiry of a grant's remainder (a
debit line at its expiry), with a running balance; then the closing balance.

Exactness: every amount is a sum of stored Decimal(38, 12) values, never a rounded
product. A group's credits are the sum of its events' line credits; whatever an event's
total differs from the sum of its lines (a rating that rounds its total, an event without
lines) is shown as an adjustment line of that day and item. So the usage debits equal the
sum of ``usage_events.credits`` of the month to the last digit, and the statement checks
``closing = opening + credits - debits`` against an independent burn-down before it is
returned (a mismatch raises rather than prints a wrong statement).

The month is the calendar month in the account's time zone; an event belongs to it by its
``event_time`` (late events land in the month they happened in). All queries of one
statement only see rows ingested before one snapshot of the store's clock, so events
arriving meanwhile cannot make its parts disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from meterhouse.access.tenants import get_account, get_project, get_team, now_utc
from meterhouse.ledger.amounts import ZERO, add, exact_sum, jsonable, plain, sub
from meterhouse.ledger.balance import (
    consumption_spans,
    grant_boundaries,
    store_snapshot,
)
from meterhouse.ledger.burndown import BurnDown, burn_down
from meterhouse.ledger.errors import LedgerError, LedgerNotFoundError
from meterhouse.ledger.grants import GrantRecord, grants_in_force_by
from meterhouse.ledger.issued import IssuedStatement, IssuedTotals, latest_issue, record_issue
from meterhouse.ledger.months import MonthSpan, aware, zone_of
from meterhouse.ledger.statement_summary import (
    Rate,
    UsageTotal,
    account_rate,
    by_category,
    by_item,
)
from meterhouse.records import USAGE_UNITS
from meterhouse.store.base import Store

LINE_TYPES: Final = ("grant", "expiry", "usage", "adjustment", "other_usage")
_USAGE_ORDER: Final = {name: index for index, name in enumerate(USAGE_UNITS)}
_KIND_LABELS: Final = {"model": "Model", "job": "Job", "api": "API", "meter": "Meter"}

_SCOPE_SQL = "({team:String} = '' OR team_id = {team:String}) AND " + (
    "({project:String} = '' OR project_id = {project:String})"
)
_WHERE = """
WHERE account_id = {account:String}
  AND event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {cutoff:DateTime64(3, 'UTC')}
  AND ingested_at <= {snapshot:DateTime64(3, 'UTC')}
"""
_DAY = "arrayCount(b -> b <= event_time, {days:Array(DateTime64(3, 'UTC'))})"

_USAGE_LINES = f"""
SELECT
    {_DAY} AS day, kind, item, l.usage_type AS usage_type, l.unit AS unit,
    sum(l.quantity) AS quantity_sum, sum(l.credits) AS credits_sum, sum(l.usd) AS usd_sum,
    min(l.unit_price_credits) AS price_min, max(l.unit_price_credits) AS price_max,
    count() AS events
FROM usage_events ARRAY JOIN lines AS l
{_WHERE} AND {_SCOPE_SQL}
GROUP BY day, kind, item, usage_type, unit
"""

_EVENT_TOTALS = f"""
SELECT
    {_DAY} AS day, kind, item, {_SCOPE_SQL} AS in_scope,
    sum(credits) AS credits_sum, sum(usd) AS usd_sum,
    sum(credits - arraySum(lines.credits)) AS residual_credits,
    sum(usd - arraySum(lines.usd)) AS residual_usd,
    count() AS events, countIf(priced = 0) AS unpriced
FROM usage_events
{_WHERE}
GROUP BY day, kind, item, in_scope
"""


@dataclass(frozen=True)
class Scope:
    """Which consumption a statement details; grants and balances are always account-wide."""

    team: str = ""
    project: str = ""

    @property
    def key(self) -> str:
        parts = [f"team:{self.team}"] if self.team else []
        parts += [f"project:{self.project}"] if self.project else []
        return "/".join(parts)

    @property
    def label(self) -> str:
        parts = [f"team {self.team}"] if self.team else []
        parts += [f"project {self.project}"] if self.project else []
        return " and ".join(parts) if parts else "the whole account"

    @property
    def whole_account(self) -> bool:
        return not (self.team or self.project)


@dataclass(frozen=True)
class StatementLine:
    local_date: date
    at: datetime | None  # exact time of grants and expiries; None for a day's usage group
    type: str  # one of LINE_TYPES
    description: str
    kind: str = ""  # model | job | api, for usage
    item: str = ""
    usage_type: str = ""
    quantity: Decimal | None = None
    unit: str = ""
    unit_price_credits: Decimal | None = None  # the stored price, when one price for the group
    unit_price_varies: bool = False
    credit: Decimal = ZERO
    debit: Decimal = ZERO
    usd: Decimal | None = None
    events: int = 0
    reference: str = ""  # grant id for grant and expiry lines
    balance: Decimal = ZERO  # running balance after this line

    @property
    def average_unit_price(self) -> Decimal | None:
        """credits / quantity: informational only, never used in a total."""
        if not self.quantity:
            return None
        return self.debit / self.quantity


@dataclass(frozen=True)
class Revision:
    """How this statement compares with the one issued before."""

    previous: IssuedStatement
    revised: bool


@dataclass(frozen=True)
class Statement:
    account_id: str
    account_name: str
    organisation: str
    time_zone: str
    span: MonthSpan
    as_of: datetime  # the cut-off: month end, or now for the month in progress
    scope: Scope
    opening_balance: Decimal
    credit_total: Decimal
    usage_total: Decimal  # consumption of the scope: the month's usage_events.credits
    other_usage_total: Decimal  # consumption outside the scope (0 for the whole account)
    expired_total: Decimal
    closing_balance: Decimal
    usd_total: Decimal
    events: int
    unpriced_events: int
    lines: tuple[StatementLine, ...]
    daily_usage: tuple[tuple[date, Decimal], ...]  # the scope's usage per local day
    generated_at: datetime
    revision: Revision | None = None
    rate: Rate | None = None  # credits per USD of the account's plan (price book)
    # Events per (local day, kind, item) of the scope: the compact view's event counts.
    item_events: tuple[tuple[tuple[date, str, str], int], ...] = ()

    def usd_value(self, credits: Decimal) -> Decimal | None:
        """What ``credits`` are worth in US dollars at the account's rate."""
        return self.rate.usd(credits) if self.rate is not None else None

    @property
    def month(self) -> date:
        return self.span.month

    @property
    def complete(self) -> bool:
        return self.as_of >= self.span.end

    @property
    def debit_total(self) -> Decimal:
        return exact_sum((self.usage_total, self.other_usage_total, self.expired_total))

    @property
    def totals(self) -> IssuedTotals:
        return IssuedTotals(
            opening_balance=self.opening_balance,
            credit_total=self.credit_total,
            debit_total=self.usage_total,
            expired_total=self.expired_total,
            closing_balance=self.closing_balance,
        )

    @property
    def scope_note(self) -> str:
        if self.scope.whole_account:
            return ""
        return (
            f"Usage lines show {self.scope.label} only. Grants, expiries and balances are "
            "account-level, so the account's other usage appears as one line per day."
        )

    @property
    def content_hash(self) -> str:
        """sha256 of what the statement says (lines and totals), not of when it was made."""
        body = {
            "account": self.account_id,
            "month": self.span.label,
            "scope": self.scope.key,
            "totals": [plain(v) for v in vars(self.totals).values()],
            "lines": [
                [
                    line.local_date.isoformat(),
                    line.type,
                    line.kind,
                    line.item,
                    line.usage_type,
                    plain(line.quantity) if line.quantity is not None else "",
                    plain(line.credit),
                    plain(line.debit),
                    line.reference,
                ]
                for line in self.lines
            ],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        revision = None
        if self.revision is not None:
            previous = self.revision.previous
            revision = {
                "revised": self.revision.revised,
                "previously_issued_at": previous.issued_at,
                "previously_issued_by": previous.issued_by,
                "previous_usage_debits": previous.totals.debit_total,
                "previous_closing_balance": previous.totals.closing_balance,
            }
        body: dict[str, Any] = jsonable(
            {
                "account": {
                    "id": self.account_id,
                    "name": self.account_name,
                    "organisation": self.organisation,
                    "time_zone": self.time_zone,
                },
                "month": self.span.label,
                "period": {
                    "start": self.span.start,
                    "end": self.span.end,
                    "as_of": self.as_of,
                    "complete": self.complete,
                },
                "scope": {
                    "team": self.scope.team,
                    "project": self.scope.project,
                    "note": self.scope_note,
                },
                "rate": None
                if self.rate is None
                else {
                    "plan": self.rate.plan,
                    "credits_per_usd": self.rate.credits_per_usd,
                    "price_book_version": self.rate.price_book_version,
                },
                "summary": {
                    "opening_balance": self.opening_balance,
                    "credits": self.credit_total,
                    "usage_debits": self.usage_total,
                    "other_usage_debits": self.other_usage_total,
                    "expired_debits": self.expired_total,
                    "debits_total": self.debit_total,
                    "closing_balance": self.closing_balance,
                    # usd is the LLM providers' cost of the usage; usd_value what its
                    # credits are worth at the account's rate.
                    "usd": self.usd_total,
                    "usd_value": self.usd_value(self.usage_total),
                    "events": self.events,
                    "unpriced_events": self.unpriced_events,
                },
                "usage_by_category": [self._total_dict(t) for t in by_category(self)],
                "usage_by_item": [self._total_dict(t) for t in by_item(self)],
                "revision": revision,
                "lines": [
                    {**_line_dict(line), "usd_value": self.usd_value(line.credit or line.debit)}
                    for line in self.lines
                ],
                "daily_usage": [
                    {"date": day, "credits": credits} for day, credits in self.daily_usage
                ],
                "generated_at": self.generated_at,
                "content_hash": self.content_hash,
            }
        )
        return body

    def _total_dict(self, total: UsageTotal) -> dict[str, Any]:
        return {
            "kind": total.kind,
            **({"item": total.item} if total.item else {}),
            "events": total.events,
            "credits": total.credits,
            "usd_value": self.usd_value(total.credits),
            "provider_cost_usd": total.provider_cost_usd,
            **({"tokens": total.tokens} if total.item and total.tokens is not None else {}),
        }


def _line_dict(line: StatementLine) -> dict[str, Any]:
    return {
        "date": line.local_date,
        "time": line.at,
        "type": line.type,
        "description": line.description,
        "kind": line.kind,
        "item": line.item,
        "usage_type": line.usage_type,
        "quantity": line.quantity,
        "unit": line.unit,
        "unit_price_credits": line.unit_price_credits,
        "unit_price_varies": line.unit_price_varies,
        "credit": line.credit,
        "debit": line.debit,
        "usd": line.usd,
        "events": line.events,
        "reference": line.reference,
        "balance": line.balance,
    }


@dataclass(frozen=True)
class _Window:
    account_id: str
    zone: ZoneInfo
    span: MonthSpan
    cutoff: datetime
    snapshot: datetime
    scope: Scope

    def params(self) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "start": self.span.start,
            "cutoff": self.cutoff,
            "snapshot": self.snapshot,
            "days": self.span.day_starts(),
            "team": self.scope.team,
            "project": self.scope.project,
        }

    def day(self, index: int) -> date:
        """The local date of day number ``index`` (1 = the first) of the month."""
        return self.span.month + timedelta(days=index - 1)

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()


def _check_scope(store: Store, account_id: str, scope: Scope) -> None:
    if scope.team and get_team(store, account_id, scope.team) is None:
        raise LedgerNotFoundError(f"no team {scope.team} in account {account_id}")
    if scope.project and get_project(store, account_id, scope.project) is None:
        raise LedgerNotFoundError(f"no project {scope.project} in account {account_id}")


def _usage_description(kind: str, item: str, usage_type: str) -> str:
    return f"{_KIND_LABELS.get(kind, kind)} {item} · {usage_type}"


def _usage_lines(store: Store, window: _Window) -> list[StatementLine]:
    lines: list[StatementLine] = []
    for row in store.query(_USAGE_LINES, window.params()).dicts():
        uniform = row["price_min"] == row["price_max"]
        lines.append(
            StatementLine(
                local_date=window.day(int(row["day"])),
                at=None,
                type="usage",
                description=_usage_description(row["kind"], row["item"], row["usage_type"]),
                kind=row["kind"],
                item=row["item"],
                usage_type=row["usage_type"],
                quantity=row["quantity_sum"],
                unit=row["unit"],
                unit_price_credits=row["price_min"] if uniform else None,
                unit_price_varies=not uniform,
                debit=row["credits_sum"],
                usd=row["usd_sum"],
                events=int(row["events"]),
            )
        )
    return lines


@dataclass
class _EventTotals:
    adjustments: list[StatementLine]
    other_by_day: dict[date, tuple[Decimal, Decimal, int]]
    usage_total: Decimal
    other_total: Decimal
    usd_total: Decimal
    events: int
    unpriced: int
    item_events: dict[tuple[date, str, str], int]


def _event_totals(store: Store, window: _Window) -> _EventTotals:
    out = _EventTotals([], {}, ZERO, ZERO, ZERO, 0, 0, {})
    for row in store.query(_EVENT_TOTALS, window.params()).dicts():
        day = window.day(int(row["day"]))
        if not row["in_scope"]:
            credits, usd, count = out.other_by_day.get(day, (ZERO, ZERO, 0))
            out.other_by_day[day] = (
                add(credits, row["credits_sum"]),
                add(usd, row["usd_sum"]),
                count + int(row["events"]),
            )
            out.other_total = add(out.other_total, row["credits_sum"])
            continue
        out.usage_total = add(out.usage_total, row["credits_sum"])
        out.usd_total = add(out.usd_total, row["usd_sum"])
        out.events += int(row["events"])
        out.unpriced += int(row["unpriced"])
        out.item_events[(day, row["kind"], row["item"])] = int(row["events"])
        if row["residual_credits"] != 0 or row["residual_usd"] != 0:
            out.adjustments.append(
                StatementLine(
                    local_date=day,
                    at=None,
                    type="adjustment",
                    description=(
                        f"{_KIND_LABELS.get(row['kind'], row['kind'])} {row['item']} · "
                        "event totals not itemised in lines"
                    ),
                    kind=row["kind"],
                    item=row["item"],
                    debit=row["residual_credits"],
                    usd=row["residual_usd"],
                    events=int(row["events"]),
                )
            )
    return out


def _grant_lines(
    window: _Window, grants: list[GrantRecord], closing: BurnDown
) -> list[StatementLine]:
    lines: list[StatementLine] = []
    for grant in grants:
        lot = grant.lot
        if window.span.start <= lot.effective_at < window.cutoff:
            expiry = (
                f" (expires {lot.expires_at.astimezone(window.zone):%Y-%m-%d %H:%M})"
                if lot.expires_at
                else ""
            )
            lines.append(
                StatementLine(
                    local_date=window.local_date(lot.effective_at),
                    at=lot.effective_at,
                    type="grant",
                    description=f"{grant.label}{expiry}",
                    credit=lot.amount,
                    reference=lot.grant_id,
                )
            )
    labels = {grant.lot.grant_id: grant.label for grant in grants}
    for state in closing.lots:
        expires = state.lot.expires_at
        if (
            state.is_expired
            and expires is not None
            and window.span.start <= expires
            and state.expired
        ):
            lines.append(
                StatementLine(
                    local_date=window.local_date(expires),
                    at=expires,
                    type="expiry",
                    description=f"Expired unused credits of {labels[state.lot.grant_id]}",
                    debit=state.expired,
                    reference=state.lot.grant_id,
                )
            )
    return lines


def _order(line: StatementLine) -> tuple[Any, ...]:
    """Per local day: grants and expiries in time order (expiry first at one instant), then
    the day's usage by kind, item and usage type, then the account's other usage. So the
    running balance after a day's last line is the balance at the end of that day."""
    if line.type in ("grant", "expiry"):
        assert line.at is not None
        return (line.local_date, 0, line.at, 0 if line.type == "expiry" else 1, line.reference)
    if line.type == "other_usage":
        return (line.local_date, 2)
    return (
        line.local_date,
        1,
        line.kind,
        line.item,
        1 if line.type == "adjustment" else 0,
        _USAGE_ORDER.get(line.usage_type, len(_USAGE_ORDER)),
        line.usage_type,
        line.unit,
    )


def _with_running_balance(opening: Decimal, lines: list[StatementLine]) -> list[StatementLine]:
    running = opening
    out: list[StatementLine] = []
    for line in sorted(lines, key=_order):
        running = sub(add(running, line.credit), line.debit)
        out.append(replace(line, balance=running))
    return out


def build_statement(
    store: Store,
    account_id: str,
    month: date,
    *,
    scope: Scope | None = None,
    now: datetime | None = None,
) -> Statement:
    """The statement of ``month`` (its first day) in the account's time zone."""
    scope = scope or Scope()
    account = get_account(store, account_id)
    if account is None:
        raise LedgerNotFoundError(
            f"no account {account_id}; list them with `meterhouse accounts list`"
        )
    _check_scope(store, account_id, scope)
    zone = zone_of(str(account["time_zone"]))
    span = MonthSpan.of(month, zone)
    as_of = aware(now) if now is not None else now_utc()
    if as_of <= span.start:
        raise LedgerError(f"{span.label} has not begun yet in {zone.key}")
    cutoff = min(span.end, as_of)
    window = _Window(account_id, zone, span, cutoff, store_snapshot(store), scope)

    grants = grants_in_force_by(store, [account_id], cutoff)[account_id]
    lots = [grant.lot for grant in grants]
    bounds = {account_id: grant_boundaries(grants, [span.start])}
    spans = consumption_spans(store, bounds, cutoff, inclusive=False, snapshot=window.snapshot)
    opening = burn_down(lots, spans[account_id], until=span.start, inclusive=False)
    closing = burn_down(lots, spans[account_id], until=cutoff, inclusive=False)

    totals = _event_totals(store, window)
    lines = _usage_lines(store, window) + totals.adjustments + _grant_lines(window, grants, closing)
    lines += [
        StatementLine(
            local_date=day,
            at=None,
            type="other_usage",
            description=f"Usage elsewhere in the account (outside {scope.label})",
            debit=credits,
            usd=usd,
            events=events,
        )
        for day, (credits, usd, events) in totals.other_by_day.items()
    ]
    ordered = _with_running_balance(opening.balance, lines)
    credit_total = exact_sum(line.credit for line in ordered)
    expired_total = exact_sum(line.debit for line in ordered if line.type == "expiry")
    statement = Statement(
        account_id=account_id,
        account_name=str(account["name"]),
        organisation=str(account["organisation"]),
        time_zone=zone.key,
        span=span,
        as_of=cutoff,
        scope=scope,
        opening_balance=opening.balance,
        credit_total=credit_total,
        usage_total=totals.usage_total,
        other_usage_total=totals.other_total,
        expired_total=expired_total,
        closing_balance=closing.balance,
        usd_total=totals.usd_total,
        events=totals.events,
        unpriced_events=totals.unpriced,
        lines=tuple(ordered),
        daily_usage=_daily_usage(span, ordered),
        generated_at=now_utc(),
        rate=account_rate(str(account.get("plan") or "")),
        item_events=tuple(sorted(totals.item_events.items())),
    )
    _check_reconciles(statement, ordered)
    previous = latest_issue(store, account_id, span.month, scope.key)
    if previous is None:
        return statement
    return replace(statement, revision=Revision(previous, previous.totals != statement.totals))


def _daily_usage(span: MonthSpan, lines: list[StatementLine]) -> tuple[tuple[date, Decimal], ...]:
    per_day = {day: ZERO for day in span.days()}
    for line in lines:
        if line.type in ("usage", "adjustment"):
            per_day[line.local_date] = add(per_day[line.local_date], line.debit)
    return tuple(per_day.items())


def _check_reconciles(statement: Statement, lines: list[StatementLine]) -> None:
    """Totals from the lines must match the independent burn-down; else refuse to print."""
    derived = sub(add(statement.opening_balance, statement.credit_total), statement.debit_total)
    line_debits = exact_sum(line.debit for line in lines)
    last = lines[-1].balance if lines else statement.opening_balance
    if (
        derived != statement.closing_balance
        or line_debits != statement.debit_total
        or last != derived
    ):
        raise LedgerError(
            f"statement of {statement.account_id} for {statement.span.label} does not reconcile "
            f"(opening {statement.opening_balance} + credits {statement.credit_total} - debits "
            f"{statement.debit_total} = {derived}, burn-down closing {statement.closing_balance}, "
            f"line debits {line_debits}); please report this"
        )


def issue_statement(store: Store, statement: Statement, *, actor: str) -> bool:
    """Record the statement as issued; False (and nothing stored) if identical to the last."""
    if not statement.complete:
        raise LedgerError(
            f"{statement.span.label} is not over yet in {statement.time_zone}: statements are "
            "issued once the month has ended (preview it without --issue)"
        )
    content = statement.content_hash
    if statement.revision is not None and statement.revision.previous.content_hash == content:
        return False
    record_issue(
        store,
        IssuedStatement(
            account_id=statement.account_id,
            month=statement.span.month,
            scope=statement.scope.key,
            issued_at=now_utc(),
            issued_by=actor,
            totals=statement.totals,
            content_hash=content,
        ),
    )
    return True
