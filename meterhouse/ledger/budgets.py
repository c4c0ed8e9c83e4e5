"""Monthly budgets in credits for an account, a team or a project, with alert thresholds.

A budget applies to one calendar month in the account's time zone, or to every month
(stored with month 1970-01-01) unless that month has a budget of its own. Usage is the
sum of ``usage_events.credits`` of the scope in the month; the forecast extrapolates the
month's run rate: ``used / elapsed fraction of the month`` (elapsed counted as at least
one day). Every change is audited (``budget.set``, ``budget.delete``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from meterhouse.access.tenants import (
    audit,
    audited_write,
    get_account,
    get_project,
    get_team,
    now_utc,
)
from meterhouse.ledger.amounts import LEDGER_CONTEXT, ZERO, add, plain
from meterhouse.ledger.errors import LedgerError, LedgerNotFoundError
from meterhouse.ledger.months import MonthSpan, aware, zone_of
from meterhouse.store.base import Store

SCOPES: Final = ("account", "team", "project")
EVERY_MONTH: Final = date(1970, 1, 1)
DEFAULT_THRESHOLDS: Final = (50, 80, 100)
_MAX_AMOUNT: Final = Decimal("1e15")

_USED = """
SELECT account_id, team_id, project_id, sum(credits) AS used
FROM usage_events
WHERE account_id IN {accounts:Array(String)}
  AND event_time >= arrayElement({starts:Array(DateTime64(3, 'UTC'))},
                                 indexOf({accounts:Array(String)}, account_id))
  AND event_time < arrayElement({ends:Array(DateTime64(3, 'UTC'))},
                                indexOf({accounts:Array(String)}, account_id))
GROUP BY account_id, team_id, project_id
"""


@dataclass(frozen=True)
class Budget:
    account_id: str
    scope: str
    scope_id: str
    month: date  # EVERY_MONTH for a standing budget
    amount: Decimal
    thresholds: tuple[int, ...]

    @property
    def every_month(self) -> bool:
        return self.month == EVERY_MONTH

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "scope": self.scope,
            "scope_id": self.scope_id,
            "month": "every" if self.every_month else self.month.strftime("%Y-%m"),
            "amount": plain(self.amount),
            "thresholds": ",".join(str(t) for t in self.thresholds),
        }


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    span: MonthSpan
    used: Decimal
    elapsed_fraction: Decimal
    at: datetime

    @property
    def used_ratio(self) -> Decimal:
        return LEDGER_CONTEXT.divide(self.used, self.budget.amount)

    @property
    def forecast(self) -> Decimal:
        return LEDGER_CONTEXT.divide(self.used, self.elapsed_fraction)

    @property
    def forecast_ratio(self) -> Decimal:
        return LEDGER_CONTEXT.divide(self.forecast, self.budget.amount)

    @property
    def crossed(self) -> tuple[int, ...]:
        return tuple(t for t in self.budget.thresholds if self.used_ratio * 100 >= t)

    @property
    def forecast_crossed(self) -> tuple[int, ...]:
        return tuple(t for t in self.budget.thresholds if self.forecast_ratio * 100 >= t)

    def to_dict(self) -> dict[str, Any]:
        def pct(value: Decimal) -> str:
            return f"{value * 100:.1f}%"

        return {
            "account_id": self.budget.account_id,
            "scope": self.budget.scope,
            "scope_id": self.budget.scope_id,
            "month": self.span.label,
            "budget": plain(self.budget.amount),
            "used": self.used.quantize(Decimal("0.0001")),
            "used_pct": pct(self.used_ratio),
            "forecast": self.forecast.quantize(Decimal("0.0001")),
            "forecast_pct": pct(self.forecast_ratio),
            "thresholds": ",".join(str(t) for t in self.budget.thresholds),
            "crossed": ",".join(f"{t}%" for t in self.crossed) or "-",
            "forecast_crosses": ",".join(f"{t}%" for t in self.forecast_crossed) or "-",
        }


def parse_thresholds(text: str) -> tuple[int, ...]:
    """``50,80,100`` -> (50, 80, 100): percent of the budget, 1-255, sorted, no repeats."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise LedgerError(f"thresholds {text!r}: write whole percents, e.g. 50,80,100") from exc
    if not values or any(not 1 <= v <= 255 for v in values):
        raise LedgerError(f"thresholds {text!r}: give one or more percents between 1 and 255")
    return tuple(values)


def _check_scope(store: Store, account_id: str, scope: str, scope_id: str) -> str:
    if get_account(store, account_id) is None:
        raise LedgerNotFoundError(
            f"no account {account_id}; list them with `meterhouse accounts list`"
        )
    if scope not in SCOPES:
        raise LedgerError(f"budget scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    if scope == "account":
        return account_id
    if not scope_id:
        raise LedgerError(f"a {scope} budget needs the {scope} id")
    found = (get_team if scope == "team" else get_project)(store, account_id, scope_id)
    if found is None:
        raise LedgerNotFoundError(f"no {scope} {scope_id} in account {account_id}")
    return scope_id


def _read(store: Store, where: str, params: dict[str, Any]) -> list[Budget]:
    result = store.query(
        "SELECT account_id, scope, scope_id, month, amount, thresholds FROM budgets FINAL "
        f"WHERE {where} ORDER BY account_id, scope, scope_id, month",
        params,
    )
    return [
        Budget(
            account_id=row["account_id"],
            scope=row["scope"],
            scope_id=row["scope_id"],
            month=row["month"],
            amount=row["amount"],
            thresholds=tuple(int(t) for t in row["thresholds"]),
        )
        for row in result.dicts()
    ]


def get_budget(
    store: Store, account_id: str, scope: str, scope_id: str, month: date
) -> Budget | None:
    found = _read(
        store,
        "account_id = {a:String} AND scope = {s:String} AND scope_id = {i:String} "
        "AND month = {m:Date}",
        {"a": account_id, "s": scope, "i": scope_id, "m": month},
    )
    return found[0] if found else None


def list_budgets(store: Store, account_id: str | None = None) -> list[Budget]:
    return _read(store, "({a:String} = '' OR account_id = {a:String})", {"a": account_id or ""})


def _last_change(store: Store, budget: Budget) -> datetime | None:
    value = store.query(
        "SELECT max(updated_at) FROM budgets WHERE account_id = {a:String} AND scope = {s:String} "
        "AND scope_id = {i:String} AND month = {m:Date}",
        {"a": budget.account_id, "s": budget.scope, "i": budget.scope_id, "m": budget.month},
    ).scalar()
    return aware(value) if isinstance(value, datetime) else None


def _write(store: Store, budget: Budget, *, deleted: bool) -> None:
    # The newest version wins (ReplacingMergeTree on updated_at): never write one that is
    # not newer than the last, even when clocks disagree by a millisecond.
    updated = now_utc()
    last = _last_change(store, budget)
    if last is not None:
        updated = max(updated, last + timedelta(milliseconds=1))
    store.insert(
        "budgets",
        {
            "account_id": [budget.account_id],
            "scope": [budget.scope],
            "scope_id": [budget.scope_id],
            "month": [budget.month],
            "amount": [budget.amount],
            "thresholds": [list(budget.thresholds)],
            "updated_at": [updated],
            "is_deleted": [1 if deleted else 0],
        },
    )


def set_budget(
    store: Store,
    *,
    account_id: str,
    scope: str,
    scope_id: str = "",
    amount: Decimal,
    month: date | None,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    actor: str,
) -> Budget:
    """Create or change a budget; ``month=None`` makes it apply to every month."""
    scope_id = _check_scope(store, account_id, scope, scope_id)
    if not isinstance(amount, Decimal) or not amount.is_finite() or not 0 < amount < _MAX_AMOUNT:
        raise LedgerError(f"budget amount must be a positive number of credits; got {amount}")
    budget = Budget(
        account_id=account_id,
        scope=scope,
        scope_id=scope_id,
        month=month.replace(day=1) if month is not None else EVERY_MONTH,
        amount=amount,
        thresholds=parse_thresholds(",".join(str(t) for t in thresholds)),
    )
    before = get_budget(store, account_id, scope, scope_id, budget.month)
    if before == budget:
        return budget
    return audited_write(
        store,
        lambda: _write(store, budget, deleted=False),
        lambda: get_budget(store, account_id, scope, scope_id, budget.month),
        actor=actor,
        action="budget.set",
        target_type="budget",
        target_id=f"{scope}:{scope_id}:{budget.to_dict()['month']}",
        account_id=account_id,
        before=before.to_dict() if before else None,
        shown=Budget.to_dict,
    )


def delete_budget(
    store: Store, *, account_id: str, scope: str, scope_id: str = "", month: date | None, actor: str
) -> Budget:
    scope_id = _check_scope(store, account_id, scope, scope_id)
    key_month = month.replace(day=1) if month is not None else EVERY_MONTH
    before = get_budget(store, account_id, scope, scope_id, key_month)
    if before is None:
        which = "every month" if month is None else key_month.strftime("%Y-%m")
        raise LedgerNotFoundError(
            f"no {scope} budget for {scope_id} ({which}) in account {account_id}"
        )
    _write(store, before, deleted=True)
    audit(
        store,
        actor=actor,
        action="budget.delete",
        target_type="budget",
        target_id=f"{scope}:{scope_id}:{before.to_dict()['month']}",
        account_id=account_id,
        before=before.to_dict(),
        after=None,
    )
    return before


def budgets_in_force(budgets: Sequence[Budget], months: dict[str, date]) -> list[Budget]:
    """The budget of each scope for its account's month: that month's, else the standing one."""
    chosen: dict[tuple[str, str, str], Budget] = {}
    for budget in budgets:
        month = months.get(budget.account_id)
        if month is None or budget.month not in (month, EVERY_MONTH):
            continue
        key = (budget.account_id, budget.scope, budget.scope_id)
        if key not in chosen or budget.month == month:
            chosen[key] = budget
    return sorted(chosen.values(), key=lambda b: (b.account_id, b.scope, b.scope_id))


def budget_statuses(
    store: Store, at: datetime | None = None, account_id: str | None = None
) -> list[BudgetStatus]:
    """Every budget in force at ``at`` (default now) with its usage and forecast."""
    when = aware(at) if at is not None else now_utc()
    budgets = list_budgets(store, account_id)
    accounts = sorted({b.account_id for b in budgets})
    zones = {
        str(row[0]): zone_of(str(row[1]))
        for row in store.query(
            "SELECT account_id, time_zone FROM accounts FINAL "
            "WHERE account_id IN {a:Array(String)}",
            {"a": accounts},
        ).rows
    }
    spans = {account: MonthSpan.containing(when, zone) for account, zone in zones.items()}
    in_force = budgets_in_force(budgets, {a: s.month for a, s in spans.items()})
    if not in_force:
        return []
    used_by: dict[tuple[str, str, str], Decimal] = {}
    ordered = sorted(spans)
    rows = store.query(
        _USED,
        {
            "accounts": ordered,
            "starts": [spans[a].start for a in ordered],
            "ends": [min(spans[a].end, when) for a in ordered],
        },
    ).rows
    for account, team, project, used in rows:
        for key in (
            (account, "account", account),
            (account, "team", team),
            (account, "project", project),
        ):
            used_by[key] = add(used_by.get(key, ZERO), used)
    return [
        BudgetStatus(
            budget=budget,
            span=spans[budget.account_id],
            used=used_by.get((budget.account_id, budget.scope, budget.scope_id), ZERO),
            elapsed_fraction=spans[budget.account_id].elapsed_fraction(when),
            at=when,
        )
        for budget in in_force
    ]


def scope_usage(
    store: Store, account_id: str, span: MonthSpan, until: datetime
) -> dict[tuple[str, str], Decimal]:
    """Credits used in ``span`` up to ``until`` per (scope, scope_id) of one account."""
    rows = store.query(
        _USED,
        {"accounts": [account_id], "starts": [span.start], "ends": [min(span.end, aware(until))]},
    ).rows
    used: dict[tuple[str, str], Decimal] = {}
    for _, team, project, credits in rows:
        for key in (("account", account_id), ("team", team), ("project", project)):
            used[key] = add(used.get(key, ZERO), credits)
    return used
