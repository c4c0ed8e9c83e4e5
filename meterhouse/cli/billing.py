"""`meterhouse billing`: sync Stripe once, read the reconciliation, open the customer portal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from billing_sync.client import BillingError, make_client
from billing_sync.portal import create_portal_session
from billing_sync.reconcile import list_issues, reconcile
from billing_sync.source import StripeSource
from billing_sync.summary import billing_summary
from billing_sync.sync import BillingSync, last_successes
from meterhouse.access.tenants import now_utc
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import echo_outcome, format_option, render_dicts
from meterhouse.errors import MeterhouseError
from meterhouse.store.base import Store

T = TypeVar("T")


def _with_store(cli: CliContext, action: Callable[[Store], T]) -> T:
    with cli.open_store() as store:
        try:
            return action(store)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc


def _source(cli: CliContext) -> StripeSource:
    try:
        return StripeSource(make_client(cli.settings), cli.settings.stripe_api_base)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def billing() -> None:
    """Stripe billing: mirror, plan allowances, reconciliation, customer portal.

    Stripe is the system of record for payment, meterhouse for usage and credits. `meterhouse
    run` syncs on a schedule; these commands do it once and show the outcome. Settings:
    MH_STRIPE_API_KEY, MH_STRIPE_API_BASE, MH_STRIPE_WEBHOOK_SECRET (see docs/billing.md).
    """


@billing.command("sync")
@click.option(
    "--full",
    is_flag=True,
    help="Re-read every Stripe object instead of the events since the last pass.",
)
@click.option(
    "--no-grants", is_flag=True, help="Mirror and reconcile only; grant no plan allowances."
)
@format_option
@pass_cli
def billing_sync(cli: CliContext, full: bool, no_grants: bool, fmt: str) -> None:
    """Sync Stripe into the mirror once, grant due plan allowances, then reconcile.

    \b
    Examples:
      meterhouse billing sync            # events since the stored cursor (first run: full)
      meterhouse billing sync --full     # every customer, subscription, invoice again
      MH_STRIPE_API_KEY=rk_live_… meterhouse billing sync --format json

    Exits non-zero with one message if the key is missing or refused, or Stripe is down.
    """
    source = _source(cli)

    def run(store: Store) -> list[dict[str, Any]]:
        sync = BillingSync(store, source, actor=cli.actor, grant_allowances=not no_grants)
        return sync.run(full=full).summary()

    click.echo(render_dicts(_with_store(cli, run), fmt))


@billing.command("reconcile")
@format_option
@pass_cli
def billing_reconcile(cli: CliContext, fmt: str) -> None:
    """Compare accounts with the Stripe mirror as it is (no Stripe request) and list issues.

    Example: meterhouse billing reconcile --format csv > issues.csv
    """

    def run(store: Store) -> list[dict[str, Any]]:
        reconcile(store, now_utc())
        return list_issues(store)

    click.echo(render_dicts(_with_store(cli, run), fmt))


@billing.command("issues")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved issues too.")
@format_option
@pass_cli
def billing_issues(cli: CliContext, include_resolved: bool, fmt: str) -> None:
    """List reconciliation issues found by the last pass (open ones unless --all).

    Each row says what meterhouse believes, what Stripe says and what to do about it.

    Example: meterhouse billing issues --all --format json
    """
    click.echo(
        render_dicts(
            _with_store(cli, lambda s: list_issues(s, include_resolved=include_resolved)), fmt
        )
    )


@billing.command("status")
@format_option
@pass_cli
def billing_status(cli: CliContext, fmt: str) -> None:
    """Billing state per account (plan on both sides, period, owed) and the last passes.

    Example: meterhouse billing status
    """

    def run(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        passes = [
            {
                "pass": name,
                "last_success_at": state.last_success_at,
                "last_duration_ms": state.last_duration_ms,
                "cursor": state.cursor,
            }
            for name, state in last_successes(store).items()
        ]
        return billing_summary(store), passes

    accounts, passes = _with_store(cli, run)
    click.echo(render_dicts(accounts, fmt))
    if fmt == "table":
        click.echo("")
        click.echo(render_dicts(passes, fmt))


@billing.command("portal")
@click.option("--account", "account_id", required=True, help="Account whose customer it is for.")
@click.option(
    "--return-url", help="Where the portal's back link goes (default: the portal's setting)."
)
@format_option
@pass_cli
def billing_portal(cli: CliContext, account_id: str, return_url: str | None, fmt: str) -> None:
    """Create a Stripe customer portal session for an account and print its URL.

    The URL is short-lived and lets its holder manage the account's plan and payment
    methods; send it to the account's billing contact only.

    Example: meterhouse billing portal --account acme --return-url https://app.example/billing
    """
    source = _source(cli)
    session = _with_store(cli, lambda s: create_portal_session(s, source, account_id, return_url))
    echo_outcome(fmt, str(session["url"]), {"account_id": account_id, **session})
