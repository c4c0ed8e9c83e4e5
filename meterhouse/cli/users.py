"""`meterhouse users`: people of an account, their roles, and their ClickHouse and Grafana
access."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from meterhouse.access import keys as k
from meterhouse.access import users as u
from meterhouse.access.clickhouse_plan import Limits
from meterhouse.access.clickhouse_sync import sync_clickhouse
from meterhouse.access.grafana_sync import sync_grafana
from meterhouse.access.roles import ROLE_SUMMARY, ROLES
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import echo_outcome, format_option, keep_limit, render_dicts
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.jsonable import to_jsonable
from meterhouse.store.base import Store

T = TypeVar("T")

account_option = click.option(
    "--account", "account_id", required=True, help="Account the user belongs to."
)
as_option = click.option(
    "--as",
    "acting_user",
    default=None,
    help="Make the change on behalf of this user of the account: refused unless that "
    "user's roles allow it (owners: anything; admins: anything but owner).",
)


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--role",
            type=click.Choice(ROLES),
            required=True,
            help="; ".join(f"{role}: {what}" for role, what in ROLE_SUMMARY.items()),
        ),
        click.option("--team", default="", help="Bind to this team (and its projects) only."),
        click.option("--project", default="", help="Bind to this project only."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _with_store(cli: CliContext, action: Callable[[Store], T]) -> T:
    with cli.open_store() as store:
        try:
            return action(store)
        except StoreError as exc:
            hint = "; run `meterhouse migrate` first" if exc.name == "UNKNOWN_TABLE" else ""
            raise click.ClickException(f"{exc}{hint}") from exc
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group()
def users() -> None:
    """Users of an account, their roles, and their per-tenant ClickHouse and Grafana access.

    \b
    Roles (docs/access.md has the full action x role matrix):
      owner    everything in the account, including owner bindings
      admin    everything but owner bindings; manages users and roles
      billing  balance, statements, usage, Stripe mirror (account-wide only)
      member   usage, statements, jobs, runs and job logs of its scope
      viewer   usage, statements, jobs and runs of its scope (no job logs)
    A binding is to the whole account, one team (with its projects) or one project.
    Every change is written to the audit log (`meterhouse users audit`).

    \b
    Examples:
      meterhouse users add alice --account acme --email alice@acme.example --role owner
      meterhouse users add bob --account acme --email bob@acme.example
      meterhouse users grant bob --account acme --role viewer --team data
      meterhouse users revoke bob --account acme --role viewer --team data --as alice
      meterhouse keys create --purpose read --user bob --account acme --expires-in 30d
      meterhouse users sync-clickhouse --dry-run
    """


@users.command("add")
@click.argument("user_id")
@account_option
@click.option("--email", required=True, help="The user's email (Grafana matches on it).")
@click.option("--name", default="", help="Display name (default: the user id).")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=None,
    help="Also grant this role (to the account, or to --team / --project).",
)
@click.option("--team", default="", help="With --role: bind to this team only.")
@click.option("--project", default="", help="With --role: bind to this project only.")
@as_option
@format_option
@pass_cli
def add_cmd(
    cli: CliContext,
    user_id: str,
    account_id: str,
    email: str,
    name: str,
    role: str | None,
    team: str,
    project: str,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Add USER_ID to the account (audited), optionally with a first role.

    \b
    Examples:
      meterhouse users add alice --account acme --email alice@acme.example --role owner
      meterhouse users add dana --account acme --email dana@acme.example \\
          --role member --project churn-model --as alice
    """
    if (team or project) and role is None:
        raise click.UsageError("--team and --project need --role")

    def add(store: Store) -> dict[str, Any]:
        if role is not None:  # check the binding before anything is written
            u.make_binding(store, account_id, user_id, role, team, project)
        added = u.add_user(
            store,
            account_id,
            user_id,
            email=email,
            name=name,
            actor=cli.actor,
            acting_user=acting_user,
        )
        if role is not None:
            binding = u.make_binding(store, account_id, user_id, role, team, project)
            u.grant(store, binding, actor=cli.actor, acting_user=acting_user)
        return added

    added = _with_store(cli, add)
    click.echo(render_dicts([added], fmt))


@users.command("remove")
@click.argument("user_id")
@account_option
@as_option
@format_option
@pass_cli
def remove_cmd(
    cli: CliContext, user_id: str, account_id: str, acting_user: str | None, fmt: str
) -> None:
    """Remove USER_ID: its roles and read keys are revoked at once, then the user (audited).

    \b
    Example:
      meterhouse users remove bob --account acme
    """
    _with_store(
        cli,
        lambda s: u.remove_user(s, account_id, user_id, actor=cli.actor, acting_user=acting_user),
    )
    echo_outcome(
        fmt,
        f"removed {user_id} from {account_id}; its roles and read keys are revoked",
        {"account_id": account_id, "user_id": user_id, "removed": True},
    )


@users.command("list")
@account_option
@format_option
@pass_cli
def list_cmd(cli: CliContext, account_id: str, fmt: str) -> None:
    """List the users of an account with their roles.

    \b
    Examples:
      meterhouse users list --account acme
      meterhouse users list --account acme --format json
    """
    found = _with_store(cli, lambda s: u.list_users(s, account_id))
    if not found and fmt == "table":
        click.echo(f"no users in {account_id}; add one with `meterhouse users add`")
        return
    columns = ("user_id", "email", "name", "roles")
    click.echo(render_dicts([{c: row[c] for c in columns} for row in found], fmt))


@users.command("show")
@click.argument("user_id")
@account_option
@format_option
@pass_cli
def show_cmd(cli: CliContext, user_id: str, account_id: str, fmt: str) -> None:
    """Show USER_ID: profile, role bindings and API keys (never their secrets).

    \b
    Example:
      meterhouse users show bob --account acme
    """

    def show(store: Store) -> dict[str, Any]:
        user = u.require_user(store, account_id, user_id)
        bindings = [b.as_dict() for b in u.list_bindings(store, account_id, user_id)]
        owned = [
            key.as_dict()
            for key in k.list_keys(store, include_inactive=True)
            if key.account_id == account_id and key.user_id == user_id
        ]
        return {**user, "bindings": bindings, "keys": owned}

    found = _with_store(cli, show)
    if fmt == "json":
        click.echo(render_dicts([found], "json"))
        return
    profile = {key: value for key, value in found.items() if key not in ("bindings", "keys")}
    click.echo(render_dicts([profile], fmt))
    click.echo("\nroles:")
    click.echo(render_dicts(found["bindings"], fmt) if found["bindings"] else "(none)")
    click.echo("\nkeys:")
    keys = [
        {c: key[c] for c in ("key_id", "purpose", "state", "created_at", "expires_at")}
        for key in found["keys"]
    ]
    click.echo(render_dicts(keys, fmt) if keys else "(none)")


@users.command("grant")
@click.argument("user_id")
@account_option
@_scope_options
@as_option
@format_option
@pass_cli
def grant_cmd(
    cli: CliContext,
    user_id: str,
    account_id: str,
    role: str,
    team: str,
    project: str,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Give USER_ID a role on the account, a team or a project (audited; takes effect on
    the next request of its read keys).

    \b
    Examples:
      meterhouse users grant bob --account acme --role billing
      meterhouse users grant bob --account acme --role viewer --team data
      meterhouse users grant bob --account acme --role member --project churn-model --as alice
    """

    def apply(store: Store) -> bool:
        binding = u.make_binding(store, account_id, user_id, role, team, project)
        return u.grant(store, binding, actor=cli.actor, acting_user=acting_user)

    changed = _with_store(cli, apply)
    state = "granted" if changed else "already had"
    _role_outcome(fmt, lambda where: f"{user_id} {state} {role} on {where} of {account_id}",
                  account_id, user_id, role, team, project, changed=changed)  # fmt: skip


def _role_outcome(
    fmt: str,
    sentence: Callable[[str], str],
    account_id: str,
    user_id: str,
    role: str,
    team: str,
    project: str,
    **done: bool,
) -> None:
    """A role change said as a sentence for people, as one record for programs."""
    where = f"team {team}" if team else f"project {project}" if project else "the account"
    record = {"account_id": account_id, "user_id": user_id, "role": role, "team": team,
              "project": project, **done}  # fmt: skip
    echo_outcome(fmt, sentence(where), record)


@users.command("revoke")
@click.argument("user_id")
@account_option
@_scope_options
@as_option
@format_option
@pass_cli
def revoke_cmd(
    cli: CliContext,
    user_id: str,
    account_id: str,
    role: str,
    team: str,
    project: str,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Take a role away from USER_ID (audited; its read keys lose it on their next request).

    \b
    Example:
      meterhouse users revoke bob --account acme --role viewer --team data
    """

    def apply(store: Store) -> None:
        binding = u.Binding(
            account_id,
            user_id,
            role,
            "team" if team else "project" if project else "account",
            team or project or account_id,
        )
        u.revoke(store, binding, actor=cli.actor, acting_user=acting_user)

    _with_store(cli, apply)
    _role_outcome(fmt, lambda where: f"revoked {role} on {where} of {account_id} from {user_id}",
                  account_id, user_id, role, team, project, revoked=True)  # fmt: skip


@users.command("audit")
@click.option("--account", "account_id", default="", help="Only this account's entries.")
@click.option("--limit", default=50, show_default=True, help="Most entries to show.")
@format_option
@pass_cli
def audit_cmd(cli: CliContext, account_id: str, limit: int, fmt: str) -> None:
    """Show the audit log, newest first: who changed what, when, before and after.

    \b
    Examples:
      meterhouse users audit --account acme
      meterhouse users audit --limit 500 --format json
    """
    found = _with_store(cli, lambda s: u.audit_entries(s, account_id, limit=limit + 1))
    found = keep_limit(found, limit, "entries", "raise --limit or give --account")
    click.echo(render_dicts(found, fmt) if found else "no audit entries")


@users.command("sync-clickhouse")
@click.option("--dry-run", is_flag=True, help="Print the statements; change nothing.")
@click.option(
    "--reset-password",
    "reset",
    multiple=True,
    metavar="NAME",
    help="Give this existing ClickHouse user (e.g. mh/acme/alice) a new password; repeatable.",
)
@pass_cli
def sync_clickhouse_cmd(cli: CliContext, dry_run: bool, reset: tuple[str, ...]) -> None:
    """Make per-tenant ClickHouse users, roles, grants and row policies match the roles.

    Each user with a role gets the ClickHouse user mh/<account>/<user>; each binding a role
    mh/<account>/<role>/<scope>[/<id>] with SELECT on the tables its role may read and a
    row policy keeping it to its account, team or project (docs/access.md). New users'
    passwords are generated and printed ONCE; ClickHouse stores only their SHA-256.

    Needs a ClickHouse server and a meterhouse ClickHouse user with access management;
    the embedded engine has no users, so there only --dry-run works.

    \b
    Examples:
      meterhouse users sync-clickhouse --dry-run
      meterhouse users sync-clickhouse
      meterhouse users sync-clickhouse --reset-password mh/acme/alice
    """
    limits = Limits(cli.settings.sql_max_rows, cli.settings.sql_max_seconds)
    result = _with_store(
        cli,
        lambda s: sync_clickhouse(
            s, limits, actor=cli.actor, dry_run=dry_run, reset_passwords=frozenset(reset)
        ),
    )
    plan = result.plan
    if dry_run:
        for statement in plan.statements:
            click.echo(statement.shown + ";")
    if plan.tables_without_account:
        click.echo(
            "no grant (no account_id column): " + ", ".join(plan.tables_without_account),
            err=True,
        )
    if plan.unclassified_tables:
        click.echo(
            "no grant (account_id but no access rule in meterhouse/access/roles.py "
            "TABLE_ACTIONS): " + ", ".join(plan.unclassified_tables),
            err=True,
        )
    verb = "would run" if dry_run else "applied"
    count = len(plan.statements) if dry_run else result.applied
    click.echo(f"{verb} {count} statements for {len(plan.users)} users", err=True)
    if result.passwords:
        rows = [{"user": user, "password": pw} for user, pw in sorted(result.passwords.items())]
        click.echo(render_dicts(rows, "table"))
        click.echo(
            "Store these passwords now: ClickHouse keeps only their SHA-256 and meterhouse "
            "keeps nothing.",
            err=True,
        )
    if not result.ok:
        raise click.ClickException(result.error)


def grafana_api_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--url, --token and --token-file of the commands that call Grafana's HTTP API."""
    options = [
        click.option("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000."),
        click.option("--token", default="", help="Grafana service account token (org Admin role)."),
        click.option(
            "--token-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Read the token from this file instead (keeps it out of the process list).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@users.command("sync-grafana")
@grafana_api_options
@click.option("--dry-run", is_flag=True, help="Print the changes; change nothing.")
@format_option
@pass_cli
def sync_grafana_cmd(
    cli: CliContext, url: str, token: str, token_file: Path | None, dry_run: bool, fmt: str
) -> None:
    """Give each account its own Grafana folder and team, with its users as members.

    The account's team may view its folder, its owners and admins edit it; no one else
    sees it. Idempotent: it reads first and changes only what differs (docs/access.md lists
    the Grafana HTTP API calls).

    \b
    Examples:
      meterhouse users sync-grafana --url http://127.0.0.1:3000 --token-file grafana.token
      meterhouse users sync-grafana --url http://127.0.0.1:3000 --token glsa_... --dry-run
    """
    if token_file is not None:
        token = token_file.read_text().strip()
    result = _with_store(
        cli, lambda s: sync_grafana(s, url, token, actor=cli.actor, dry_run=dry_run)
    )
    if fmt == "json":
        click.echo(render_dicts([to_jsonable(result.summary())], "json"))
        return
    prefix = "would " if dry_run else ""
    for change in result.changes:
        click.echo(f"{prefix}{change}")
    for missing in result.missing_users:
        click.echo(f"not in Grafana yet (matched by email): {missing}", err=True)
    click.echo(f"{len(result.changes)} changes{' planned' if dry_run else ''}", err=True)
