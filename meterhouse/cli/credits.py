"""`balance`, `statement`, `grants` and `budgets`: the credit ledger from the command line.

Every command here, reads and changes, also works while `meterhouse run` owns the
embedded store: the store is then the service's (CliContext.open_store).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from meterhouse.access.tenants import now_utc
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.errors import MeterhouseError
from meterhouse.jsonable import Ratio
from meterhouse.ledger import budgets as b
from meterhouse.ledger.amounts import AmountError, jsonable, parse_credits, plain, shown
from meterhouse.ledger.balance import Balance, account_balance
from meterhouse.ledger.grants import GRANT_KINDS, create_grant, list_grants
from meterhouse.ledger.months import MonthSpan, account_zone, parse_month, parse_time
from meterhouse.ledger.statement import Scope, build_statement, issue_statement
from meterhouse.ledger.statement_formats import FORMATS, render
from meterhouse.store.base import Store

T = TypeVar("T")

account_option = click.option(
    "--account", "account_id", required=True, help="Account id (`meterhouse accounts list`)."
)


def _with_store(cli: CliContext, action: Callable[[Store], T]) -> T:
    with cli.open_store() as store:
        try:
            return action(store)
        except (MeterhouseError, AmountError) as exc:
            raise click.ClickException(str(exc)) from exc


# balance ------------------------------------------------------------------------------


def _amount(value: Decimal) -> Decimal:
    """An amount without trailing zeros: JSON carries it exact, the table aligns it."""
    return Decimal(plain(value))


def _balance_text(payload: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(payload, indent=2)
    head = [
        f"Balance of {payload['account_id']} at {payload['at']}: "
        f"{shown(Decimal(payload['balance']))} credits",
        f"  granted  {shown(Decimal(payload['granted']))}",
        f"  consumed {shown(Decimal(payload['consumed']))}",
        f"  expired  {shown(Decimal(payload['expired']))}",
    ]
    if Decimal(payload["overage"]) > 0:
        head.append(
            f"  of which overage not covered by any grant: {shown(Decimal(payload['overage']))}"
        )
    grants = [
        {
            "grant_id": g["grant_id"],
            "kind": g["kind"],
            "priority": g["priority"],
            "amount": _amount(Decimal(g["amount"])),
            "effective_at": g["effective_at"],
            "expires_at": g["expires_at"] or "",
            "consumed": _amount(Decimal(g["consumed"])),
            "expired": _amount(Decimal(g["expired"])),
            "remaining": _amount(Decimal(g["remaining"])),
            "status": g["status"],
        }
        for g in payload["grants"]
    ]
    table = render_dicts(grants, "table") if grants else "(no grants)"
    return "\n".join([*head, "", "Grants, in the order they took effect:", table])


@click.command()
@account_option
@click.option(
    "--at",
    "at_text",
    help="Time of the balance (ISO; no offset = account time zone). Default: now.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_cli
def balance(cli: CliContext, account_id: str, at_text: str | None, fmt: str) -> None:
    """Credit balance of an account: granted - consumed - expired, per grant.

    Consumption burns grants by priority (lower first), then earliest expiry, then
    oldest; what is left of a grant when it expires leaves the balance (docs/credits.md).

    \b
    Examples:
      meterhouse balance --account acme
      meterhouse balance --account acme --at 2026-11-01            # midnight, account zone
      meterhouse balance --account acme --at 2026-11-15T12:00Z --format json
    """

    def local(store: Store) -> str:
        zone = account_zone(store, account_id)
        at = parse_time(at_text, zone) if at_text else now_utc()
        result: Balance = account_balance(store, account_id, at)
        return _balance_text(jsonable(result.to_dict()), fmt)

    click.echo(_with_store(cli, local))


# statement ----------------------------------------------------------------------------


@click.command()
@account_option
@click.option(
    "--month",
    "month_text",
    help="Calendar month YYYY-MM in the account's time zone. Default: this month.",
)
@click.option("--team", default="", help="Only this team's usage (grants stay account-level).")
@click.option(
    "--project", default="", help="Only this project's usage (grants stay account-level)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table to read, csv/json for programs, html to file or print.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.option(
    "--detail",
    is_flag=True,
    help="Every usage type on its own line, with quantity, unit price (per 1M tokens for "
    "tokens) and the providers' cost; default: one line per day and item.",
)
@click.option(
    "--issue",
    is_flag=True,
    help="Record the statement as issued (the month must be over); re-generating it later "
    "with different totals shows REVISED.",
)
@pass_cli
def statement(
    cli: CliContext,
    account_id: str,
    month_text: str | None,
    team: str,
    project: str,
    fmt: str,
    output: Path | None,
    detail: bool,
    issue: bool,
) -> None:
    """Usage statement of one month: a bank-account statement for credits.

    A summary (opening balance, credits, usage, expired credits, closing balance, each
    with its dollar value at the account's rate), usage by category and by model or job
    kind with totals, then in time order the grants and top-ups (credits), the usage per
    local day and item (debits; --detail: per usage type with quantity and unit price),
    expired grant remainders, and a running balance marked OVERDRAWN when negative.
    Totals reconcile exactly: closing = opening + credits - debits. csv and json carry
    every line with exact amounts and per-unit prices.

    \b
    Examples:
      meterhouse statement --account acme --month 2026-10
      meterhouse statement --account acme --month 2026-10 --format html -o acme-2026-10.html
      meterhouse statement --account acme --month 2026-10 --detail
      meterhouse statement --account acme --month 2026-10 --team data --format csv
      meterhouse statement --account acme --month 2026-10 --issue
    """
    scope = Scope(team=team, project=project)

    def local(store: Store) -> str:
        zone = account_zone(store, account_id)
        month = (
            parse_month(month_text) if month_text else MonthSpan.containing(now_utc(), zone).month
        )
        result = build_statement(store, account_id, month, scope=scope)
        if issue:
            recorded = issue_statement(store, result, actor=cli.actor)
            click.echo(
                f"issued {result.span.label} for {account_id}"
                if recorded
                else "identical to the statement issued before; not issued again",
                err=True,
            )
        return render(result, fmt, detail=detail)

    text = _with_store(cli, local)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


# grants -------------------------------------------------------------------------------


@click.group()
def grants() -> None:
    """Credit grants: plan allowances, top-ups, promotional credits, adjustments."""


@grants.command("add")
@account_option
@click.option("--kind", type=click.Choice(GRANT_KINDS), required=True)
@click.option("--amount", required=True, help="Credits granted, e.g. 500 or 12.5.")
@click.option(
    "--key",
    "key",
    required=True,
    help="Idempotency key: the same key never credits twice (e.g. the payment id).",
)
@click.option(
    "--effective",
    "effective_text",
    help="When it takes effect (ISO; no offset = account zone). Default: now.",
)
@click.option(
    "--expires",
    "expires_text",
    help="When the rest expires (ISO; a date means midnight, account zone). Default: never.",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 255),
    default=10,
    show_default=True,
    help="Burn-down order: lower burns first.",
)
@click.option("--description", default="", help="Shown on statements, e.g. 'Invoice 2026-114'.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_cli
def grants_add(
    cli: CliContext,
    account_id: str,
    kind: str,
    amount: str,
    key: str,
    effective_text: str | None,
    expires_text: str | None,
    priority: int,
    description: str,
    fmt: str,
) -> None:
    """Grant credits to an account, once per idempotency key (audited).

    \b
    Examples:
      meterhouse grants add --account acme --kind top_up --amount 500 --key pay_8841
      meterhouse grants add --account acme --kind promotional --amount 1000 --key launch-promo \\
          --expires 2027-01-01 --priority 5 --description "Launch promotion"
    """

    def add(store: Store) -> tuple[dict[str, Any], bool]:
        zone: ZoneInfo = account_zone(store, account_id)
        effective: datetime = parse_time(effective_text, zone) if effective_text else now_utc()
        outcome = create_grant(
            store,
            account_id=account_id,
            kind=kind,
            amount=parse_credits(amount),
            effective_at=effective,
            expires_at=parse_time(expires_text, zone) if expires_text else None,
            idempotency_key=key,
            priority=priority,
            description=description,
            actor=cli.actor,
            source="manual",
        )
        return outcome.grant, outcome.created

    grant, created = _with_store(cli, add)
    if not created:
        click.echo(f"a grant with key {key!r} exists already; nothing credited again", err=True)
    click.echo(render_dicts([jsonable(grant)], fmt))


@grants.command("list")
@account_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_cli
def grants_list(cli: CliContext, account_id: str, fmt: str) -> None:
    """List an account's grants with what is left of each now.

    Example: meterhouse grants list --account acme
    """

    def rows(store: Store) -> list[dict[str, Any]]:
        account_zone(store, account_id)
        now = now_utc()
        states = {g.grant_id: g for g in account_balance(store, account_id, now).grants}
        out = []
        for grant in list_grants(store, account_id):
            state = states.get(grant["grant_id"])
            out.append(
                {
                    "grant_id": grant["grant_id"],
                    "kind": grant["kind"],
                    "amount": _amount(grant["amount"]),
                    "priority": grant["priority"],
                    "effective_at": grant["effective_at"],
                    "expires_at": grant["expires_at"],
                    "remaining": _amount(state.remaining if state else grant["amount"]),
                    "status": state.status
                    if state
                    else ("voided" if grant["voided"] else "scheduled"),
                    "key": grant["idempotency_key"],
                    "description": grant["description"],
                }
            )
        return out

    click.echo(render_dicts(_with_store(cli, rows), fmt))


# budgets ------------------------------------------------------------------------------


def _scope(account_id: str, team: str | None, project: str | None) -> tuple[str, str]:
    if team and project:
        raise click.UsageError("give --team or --project, not both")
    if team:
        return "team", team
    if project:
        return "project", project
    return "account", account_id


def _check_month_flags(month_text: str | None, every_month: bool) -> None:
    if month_text and every_month:
        raise click.UsageError("give --month or --every-month, not both")


scope_options = [
    click.option("--team", help="Budget of this team (default: the whole account)."),
    click.option("--project", help="Budget of this project (default: the whole account)."),
    click.option(
        "--month", "month_text", help="Month YYYY-MM (account zone). Default: this month."
    ),
    click.option(
        "--every-month",
        is_flag=True,
        help="A standing budget for every month without one of its own.",
    ),
]


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(scope_options):
        func = option(func)
    return func


def _resolve_month(
    store: Store, account_id: str, month_text: str | None, every_month: bool
) -> date | None:
    if every_month:
        return None
    if month_text:
        return parse_month(month_text)
    return MonthSpan.containing(now_utc(), account_zone(store, account_id)).month


@click.group()
def budgets() -> None:
    """Monthly budgets in credits per account, team or project, with alert thresholds."""


@budgets.command("list")
@click.option("--account", "account_id", help="Only this account.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_cli
def budgets_list(cli: CliContext, account_id: str | None, fmt: str) -> None:
    """List budgets (month 'every' = a standing budget)."""
    found = _with_store(cli, lambda s: b.list_budgets(s, account_id))
    click.echo(render_dicts([budget.to_dict() for budget in found], fmt))


@budgets.command("set")
@account_option
@click.option("--amount", required=True, help="Credits for the month, e.g. 20000.")
@_scope_options
@click.option(
    "--thresholds",
    default="50,80,100",
    show_default=True,
    help="Percents of the budget that alert.",
)
@format_option
@pass_cli
def budgets_set(
    cli: CliContext,
    account_id: str,
    amount: str,
    team: str | None,
    project: str | None,
    month_text: str | None,
    every_month: bool,
    thresholds: str,
    fmt: str,
) -> None:
    """Create or change a budget (audited as budget.set).

    \b
    Examples:
      meterhouse budgets set --account acme --amount 20000 --every-month
      meterhouse budgets set --account acme --project churn-model --amount 3000 --month 2026-11
      meterhouse budgets set --account acme --team data --amount 8000 --thresholds 75,90,100
    """
    scope, scope_id = _scope(account_id, team, project)
    _check_month_flags(month_text, every_month)

    def apply(store: Store) -> b.Budget:
        return b.set_budget(
            store,
            account_id=account_id,
            scope=scope,
            scope_id=scope_id,
            amount=parse_credits(amount),
            month=_resolve_month(store, account_id, month_text, every_month),
            thresholds=b.parse_thresholds(thresholds),
            actor=cli.actor,
        )

    click.echo(render_dicts([_with_store(cli, apply).to_dict()], fmt))


@budgets.command("delete")
@account_option
@_scope_options
@format_option
@pass_cli
def budgets_delete(
    cli: CliContext,
    account_id: str,
    team: str | None,
    project: str | None,
    month_text: str | None,
    every_month: bool,
    fmt: str,
) -> None:
    """Delete a budget (audited as budget.delete).

    Example: meterhouse budgets delete --account acme --project churn-model --month 2026-11
    """
    scope, scope_id = _scope(account_id, team, project)
    _check_month_flags(month_text, every_month)
    removed = _with_store(
        cli,
        lambda s: b.delete_budget(
            s,
            account_id=account_id,
            scope=scope,
            scope_id=scope_id,
            month=_resolve_month(s, account_id, month_text, every_month),
            actor=cli.actor,
        ),
    )
    if fmt == "table":
        month = removed.to_dict()["month"]
        click.echo(f"deleted {removed.scope} budget {removed.scope_id} ({month})")
    else:
        click.echo(render_dicts([{**removed.to_dict(), "deleted": True}], fmt))


def _status_row(status: b.BudgetStatus) -> dict[str, Any]:
    """Machine values (fractions, lists) that the table shows as 8.1% and 50%,80%."""

    def shares(percents: tuple[int, ...]) -> list[Ratio]:
        return [Ratio(Decimal(t) / 100) for t in percents]

    return {
        **status.to_dict(),
        "budget": status.budget.amount,
        "used_pct": Ratio(status.used_ratio),
        "forecast_pct": Ratio(status.forecast_ratio),
        "thresholds": shares(status.budget.thresholds),
        "crossed": shares(status.crossed),
        "forecast_crosses": shares(status.forecast_crossed),
    }


@budgets.command("status")
@click.option(
    "--account",
    "account_id",
    default=None,
    help="Only this account (`meterhouse accounts list`). Default: every account.",
)
@click.option(
    "--at",
    "at_text",
    help="As of this time (ISO; no offset = the account's zone, or UTC for every account). "
    "Default: now.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_cli
def budgets_status(cli: CliContext, account_id: str | None, at_text: str | None, fmt: str) -> None:
    """This month's budgets: used %, month-end forecast, thresholds crossed.

    The forecast extrapolates the month's run rate: used / elapsed fraction of the month
    (in each account's time zone, counted as at least one day).

    \b
    Examples:
      meterhouse budgets status
      meterhouse budgets status --account acme --format json
    """

    def statuses(store: Store) -> list[dict[str, Any]]:
        zone = account_zone(store, account_id) if account_id else ZoneInfo("UTC")
        at = parse_time(at_text, zone) if at_text else now_utc()
        return [_status_row(s) for s in b.budget_statuses(store, at, account_id)]

    found = _with_store(cli, statuses)
    if not found and fmt == "table":
        whom = account_id or "any account"
        click.echo(
            f"no budget in force for {whom} this month; add one with `meterhouse budgets set`"
        )
        return
    click.echo(render_dicts(found, fmt))
