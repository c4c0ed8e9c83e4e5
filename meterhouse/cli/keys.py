"""`meterhouse keys`: API keys for the ingest endpoints and personal read keys.

Works on the store directly, or, while `meterhouse run` owns the embedded store, through
the service's admin API (which also makes a revocation effective on its next request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import click

from meterhouse.access import keys as k
from meterhouse.access.tenants import TenantError
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.errors import MeterhouseError, StoreError, StoreLockedError
from meterhouse.jsonable import to_jsonable
from meterhouse.service.client import ServiceClient
from meterhouse.store import open_store
from meterhouse.store.base import Store

LIST_COLUMNS = (
    "key_id",
    "purpose",
    "source",
    "account_id",
    "user_id",
    "state",
    "created_at",
    "expires_at",
    "revoked_at",
    "description",
)


class KeyBackend(Protocol):
    def create(self, fields: dict[str, str]) -> tuple[dict[str, Any], str]: ...
    def list(self, include_inactive: bool) -> list[dict[str, Any]]: ...
    def revoke(self, key_id: str, actor: str) -> dict[str, Any]: ...


class StoreKeys:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, fields: dict[str, str]) -> tuple[dict[str, Any], str]:
        expires = fields.get("expires_in", "")
        key, token = k.create_key(
            self.store,
            purpose=fields["purpose"],
            source=fields["source"],
            account_id=fields["account_id"],
            expires_in=k.parse_duration(expires) if expires else None,
            description=fields["description"],
            actor=fields["actor"],
            user_id=fields.get("user_id", ""),
        )
        return to_jsonable(key.as_dict()), token

    def list(self, include_inactive: bool) -> list[dict[str, Any]]:
        found = k.list_keys(self.store, include_inactive=include_inactive)
        return [to_jsonable(key.as_dict()) for key in found]

    def revoke(self, key_id: str, actor: str) -> dict[str, Any]:
        return dict(to_jsonable(k.revoke_key(self.store, key_id, actor=actor).as_dict()))


class ServiceKeys(ServiceClient):
    """The same operations through a running service's admin API."""

    def create(self, fields: dict[str, str]) -> tuple[dict[str, Any], str]:
        # Read keys are made by the access part's endpoint, which knows users.
        path = "/api/v1/access/keys" if fields.get("user_id") else "/api/v1/keys"
        body = self._call("POST", path, json=fields)
        return body["key"], str(body["token"])

    def list(self, include_inactive: bool) -> list[dict[str, Any]]:
        body = self._call("GET", "/api/v1/keys", params={"all": "1" if include_inactive else ""})
        return list(body["keys"])

    def revoke(self, key_id: str, actor: str) -> dict[str, Any]:
        return dict(
            self._call("POST", f"/api/v1/keys/{key_id}/revoke", json={"actor": actor})["key"]
        )


@contextmanager
def key_backend(cli: CliContext) -> Iterator[KeyBackend]:
    try:
        store = open_store(cli.settings)
    except StoreLockedError as exc:
        # The service caches ingest keys: it must make the change, so a revocation counts
        # on its next request.
        yield ServiceKeys(*cli.service_target(exc))
        return
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc
    with store:
        yield StoreKeys(store)


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except (k.ApiKeyError, TenantError) as exc:
        raise click.ClickException(str(exc)) from exc
    except StoreError as exc:
        hint = "; run `meterhouse migrate` first" if exc.name == "UNKNOWN_TABLE" else ""
        raise click.ClickException(f"{exc}{hint}") from exc
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def keys() -> None:
    """API keys: ingest keys that send usage, personal read keys that read it.

    An ingest key may send events of one CloudEvents source (and, optionally, one
    account) to POST /api/v1/events and POST /v1/traces. A read key belongs to one user
    of one account and reads the read APIs (balance, statement, jobs, events, users) as
    far as that user's roles allow (docs/access.md). Only a hash is stored: the token is
    shown once, when the key is created.

    \b
    Examples:
      meterhouse keys create --source platform.prod --expires-in 90d
      meterhouse keys create --source billing-bot --account acme --description "acme bot"
      meterhouse keys create --purpose read --user bob --account acme --expires-in 30d
      meterhouse keys list --all
      meterhouse keys revoke 3f9c2a7d1b0e4c55
    """


@keys.command("create")
@click.option(
    "--source",
    default="",
    help="CloudEvents source the key may send as (required "
    "for ingest keys; OTLP spans are stored under it).",
)
@click.option(
    "--account",
    "account_id",
    default="",
    help="Ingest keys: only events of this account. Read keys: the user's account.",
)
@click.option("--user", "user_id", default="", help="Read keys: the user whose roles apply.")
@click.option("--expires-in", default="", help="Lifetime, e.g. 90d, 12h, 2w (default: never).")
@click.option(
    "--purpose",
    type=click.Choice(k.PURPOSES),
    default="ingest",
    show_default=True,
    help="What the key is for; the ingest endpoints take ingest keys only.",
)
@click.option("--description", default="", help="A note shown in `keys list`.")
@format_option
@pass_cli
def create_cmd(
    cli: CliContext,
    source: str,
    account_id: str,
    user_id: str,
    expires_in: str,
    purpose: str,
    description: str,
    fmt: str,
) -> None:
    """Create a key and print its token (shown only this once).

    \b
    Use the token as a bearer token:
      curl -H "Authorization: Bearer mh_..." -H "Content-Type: application/cloudevents+json" \\
           --data @event.json http://127.0.0.1:8080/api/v1/events
      curl -H "Authorization: Bearer mh_..." \\
           http://127.0.0.1:8080/api/v1/accounts/acme/statement?month=2026-11
    """
    if expires_in:
        _run(lambda: k.parse_duration(expires_in))
    if purpose == "read" and not (user_id and account_id):
        raise click.UsageError(
            "a read key belongs to a user: give --user and --account (it reads what that "
            "user's roles allow)"
        )
    fields = {
        "purpose": purpose,
        "source": source,
        "account_id": account_id,
        "expires_in": expires_in,
        "description": description,
        "actor": cli.actor,
        "user_id": user_id,
    }
    with key_backend(cli) as backend:
        key, token = _run(lambda: backend.create(fields))
    shown = {c: key.get(c) for c in LIST_COLUMNS[:8]}
    if fmt == "table":
        click.echo(render_dicts([shown], "table"))
        click.echo(f"\ntoken: {token}")
    else:
        click.echo(render_dicts([{**shown, "token": token}], fmt))
    click.echo("Store it now: meterhouse keeps only its hash and cannot show it again.", err=True)


@keys.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Also revoked and expired keys.")
@format_option
@pass_cli
def list_cmd(cli: CliContext, include_inactive: bool, fmt: str) -> None:
    """List keys (never their secrets), oldest first.

    \b
    Examples:
      meterhouse keys list
      meterhouse keys list --all --format json
    """
    with key_backend(cli) as backend:
        found = _run(lambda: backend.list(include_inactive))
    rows = [{c: key.get(c) for c in LIST_COLUMNS} for key in found]
    if not rows and fmt == "table":
        click.echo("no keys; create one with `meterhouse keys create --source S`")
        return
    click.echo(render_dicts(rows, fmt))


@keys.command("revoke")
@click.argument("key_id")
@format_option
@pass_cli
def revoke_cmd(cli: CliContext, key_id: str, fmt: str) -> None:
    """Revoke KEY_ID at once (audited). Requests with it get 401 from then on.

    \b
    Example:
      meterhouse keys revoke 3f9c2a7d1b0e4c55
    """
    with key_backend(cli) as backend:
        key = _run(lambda: backend.revoke(key_id, cli.actor))
    if fmt == "table":
        click.echo(f"revoked {key['key_id']} at {key['revoked_at']}")
    else:
        click.echo(render_dicts([{c: key.get(c) for c in LIST_COLUMNS}], fmt))
