"""`accounts`, `teams`, `projects`: the tenants and the account profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from meterhouse.access import tenants
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.errors import MeterhouseError
from meterhouse.store.base import Store


def _run(cli: CliContext, action: Callable[[Store], Any], fmt: str) -> None:
    with cli.open_store() as store:
        try:
            outcome = action(store)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc
    items = outcome if isinstance(outcome, list) else [outcome]
    click.echo(render_dicts(items, fmt))


def _profile_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", help="Display name."),
        click.option("--organisation", help="Name of the organisation."),
        click.option(
            "--time-zone",
            help="IANA time zone, e.g. Europe/Paris: 'this month' is the calendar month there.",
        ),
        click.option("--plan", type=click.Choice(tenants.PLANS), help="Plan the account is on."),
        click.option("--stripe-customer-id", help="Stripe customer (cus_…) that pays."),
        click.option(
            "--custom-instructions",
            help="Instructions the platform's AI models receive for this account.",
        ),
        click.option("--status", type=click.Choice(["active", "suspended", "closed"])),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


@click.group()
def accounts() -> None:
    """Accounts and their profile (organisation, time zone, plan, custom instructions)."""


@accounts.command("create")
@click.argument("account_id")
@_profile_options
@format_option
@pass_cli
def accounts_create(cli: CliContext, /, account_id: str, fmt: str, **fields: Any) -> None:
    """Create account ACCOUNT_ID.

    Example: meterhouse accounts create acme --organisation "Acme Ltd" --time-zone Europe/Paris
    """
    _run(
        cli,
        lambda s: tenants.create_account(s, account_id, actor=cli.actor, **_given(**fields)),
        fmt,
    )


@accounts.command("list")
@format_option
@pass_cli
def accounts_list(cli: CliContext, fmt: str) -> None:
    """List every account."""
    _run(cli, tenants.list_accounts, fmt)


@accounts.command("show")
@click.argument("account_id")
@format_option
@pass_cli
def accounts_show(cli: CliContext, account_id: str, fmt: str) -> None:
    """Show the profile of ACCOUNT_ID."""

    def show(store: Store) -> dict[str, Any]:
        found = tenants.get_account(store, account_id)
        if found is None:
            raise tenants.TenantError(f"no account {account_id}; `accounts list` shows them")
        return found

    _run(cli, show, fmt)


@accounts.command("update")
@click.argument("account_id")
@_profile_options
@format_option
@pass_cli
def accounts_update(cli: CliContext, /, account_id: str, fmt: str, **fields: Any) -> None:
    """Change fields of ACCOUNT_ID's profile; fields not given keep their value."""
    given = _given(**fields)
    if not given:
        raise click.UsageError("give at least one field to change, e.g. --time-zone UTC")
    _run(cli, lambda s: tenants.update_account(s, account_id, actor=cli.actor, **given), fmt)


account_option = click.option("--account", "account_id", required=True, help="Account id.")


@click.group()
def teams() -> None:
    """Teams inside an account."""


@teams.command("create")
@account_option
@click.argument("team_id")
@click.option("--name", default="", help="Display name.")
@format_option
@pass_cli
def teams_create(cli: CliContext, account_id: str, team_id: str, name: str, fmt: str) -> None:
    """Create team TEAM_ID in an account."""
    _run(
        cli,
        lambda s: tenants.upsert_team(s, account_id, team_id, name, actor=cli.actor, create=True),
        fmt,
    )


@teams.command("list")
@account_option
@format_option
@pass_cli
def teams_list(cli: CliContext, account_id: str, fmt: str) -> None:
    """List the teams of an account."""
    _run(cli, lambda s: tenants.list_teams(s, account_id), fmt)


@teams.command("show")
@account_option
@click.argument("team_id")
@format_option
@pass_cli
def teams_show(cli: CliContext, account_id: str, team_id: str, fmt: str) -> None:
    """Show one team."""

    def show(store: Store) -> dict[str, Any]:
        found = tenants.get_team(store, account_id, team_id)
        if found is None:
            raise tenants.TenantError(f"no team {team_id} in account {account_id}")
        return found

    _run(cli, show, fmt)


@teams.command("update")
@account_option
@click.argument("team_id")
@click.option("--name", required=True, help="New display name.")
@format_option
@pass_cli
def teams_update(cli: CliContext, account_id: str, team_id: str, name: str, fmt: str) -> None:
    """Rename a team."""
    _run(
        cli,
        lambda s: tenants.upsert_team(s, account_id, team_id, name, actor=cli.actor, create=False),
        fmt,
    )


@click.group()
def projects() -> None:
    """Projects inside an account, optionally under a team."""


@projects.command("create")
@account_option
@click.argument("project_id")
@click.option("--team", "team_id", help="Team the project belongs to.")
@click.option("--name", help="Display name.")
@format_option
@pass_cli
def projects_create(
    cli: CliContext,
    account_id: str,
    project_id: str,
    team_id: str | None,
    name: str | None,
    fmt: str,
) -> None:
    """Create project PROJECT_ID in an account."""
    _run(
        cli,
        lambda s: tenants.upsert_project(
            s, account_id, project_id, team_id=team_id, name=name, actor=cli.actor, create=True
        ),
        fmt,
    )


@projects.command("list")
@account_option
@click.option("--team", "team_id", help="Only this team's projects.")
@format_option
@pass_cli
def projects_list(cli: CliContext, account_id: str, team_id: str | None, fmt: str) -> None:
    """List the projects of an account."""
    _run(cli, lambda s: tenants.list_projects(s, account_id, team_id), fmt)


@projects.command("show")
@account_option
@click.argument("project_id")
@format_option
@pass_cli
def projects_show(cli: CliContext, account_id: str, project_id: str, fmt: str) -> None:
    """Show one project."""

    def show(store: Store) -> dict[str, Any]:
        found = tenants.get_project(store, account_id, project_id)
        if found is None:
            raise tenants.TenantError(f"no project {project_id} in account {account_id}")
        return found

    _run(cli, show, fmt)


@projects.command("update")
@account_option
@click.argument("project_id")
@click.option("--team", "team_id", help="Move the project to this team.")
@click.option("--name", help="New display name.")
@format_option
@pass_cli
def projects_update(
    cli: CliContext,
    account_id: str,
    project_id: str,
    team_id: str | None,
    name: str | None,
    fmt: str,
) -> None:
    """Rename a project or move it to another team."""
    _run(
        cli,
        lambda s: tenants.upsert_project(
            s, account_id, project_id, team_id=team_id, name=name, actor=cli.actor, create=False
        ),
        fmt,
    )
