"""`meterhouse notify`: notification channels, their delivery log, Alertmanager's config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import echo_outcome, format_option, render_dicts
from meterhouse.errors import MeterhouseError
from meterhouse.jsonable import to_jsonable
from meterhouse.notify import channels as ch
from meterhouse.notify.alertmanager_config import render_file
from meterhouse.notify.deliveries import delivery_log, test_channel
from meterhouse.settings import Settings
from meterhouse.store import Store

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "alertmanager" / "alertmanager.yml"


class StoreNotify:
    """Notification channels on a store (the service's, while `meterhouse run` holds it)."""

    def __init__(self, store: Store, settings: Settings, actor: str) -> None:
        self.store, self.settings, self.actor = store, settings, actor

    def add(self, account: str, fields: dict[str, Any], acting_user: str | None) -> dict[str, Any]:
        from meterhouse.service.notify_api import create_from_payload

        channel, secret = create_from_payload(
            self.store, self.settings, account, fields, self.actor, acting_user
        )
        return {"channel": channel.public(), "secret": secret}

    def channels(self, account: str) -> list[dict[str, Any]]:
        from meterhouse.service.notify_api import channels_with_health

        return channels_with_health(self.store, account)

    def remove(self, account: str, channel_id: str, acting_user: str | None) -> dict[str, Any]:
        channel = ch.remove_channel(
            self.store, account, channel_id, actor=self.actor, acting_user=acting_user
        )
        return {"channel": channel.public(), "removed": True}

    def test(self, account: str, channel_id: str, acting_user: str | None) -> dict[str, Any]:
        ch.authorize(self.store, account, self.actor, acting_user)
        channel = ch.get_channel(self.store, account, channel_id)
        outcome = test_channel(self.store, self.settings, channel)
        return {
            "channel": channel.public(),
            "ok": outcome.ok,
            "response_code": outcome.code,
            "error": outcome.error,
        }

    def log(self, account: str | None, limit: int, alert: str) -> list[dict[str, Any]]:
        return delivery_log(self.store, account, limit=limit, alert=alert)


@contextmanager
def backend(cli: CliContext) -> Iterator[StoreNotify]:
    """The channels on the store, or on the store of the `meterhouse run` that holds it
    (a test is then sent from this process, with its MH_SMTP_* and MH_NOTIFY_SECRET_KEY)."""
    with cli.open_store() as store:
        try:
            yield StoreNotify(store, cli.settings, cli.actor)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc


def _owner(account: str | None, operators: bool) -> str:
    if bool(account) == operators:
        raise click.UsageError("name one --account ACCOUNT, or --operators")
    return "" if operators else str(account)


def owner_options(func: Any) -> Any:
    func = click.option(
        "--operators", is_flag=True, help="The operators' channels (alerts naming no account)."
    )(func)
    return click.option("--account", "account", help="The account whose channels these are.")(func)


as_option = click.option(
    "--as",
    "acting_user",
    help="Act as this user of the account: only its account-wide owners and admins may.",
)


@click.group()
def notify() -> None:
    """Alert notifications: where each account hears about its alerts, and what was sent.

    Alertmanager routes alerts to meterhouse (`notify alertmanager-config` writes its
    config); meterhouse delivers each alert to the channels of the account it names and
    keeps every attempt (`notify log`). docs/alerts.md walks through it.
    """


@notify.group()
def channels() -> None:
    """Add, list, test and remove notification channels (webhook, email, slack)."""


@channels.command("add")
@owner_options
@click.option(
    "--type", "kind", type=click.Choice(ch.TYPES), required=True, help="What kind of channel."
)
@click.option(
    "--target",
    required=True,
    help="webhook: the URL to POST to; email: address(es), comma-separated; slack: the "
    "incoming-webhook URL (kept sealed, never shown again).",
)
@click.option(
    "--min-severity",
    type=click.Choice(ch.SEVERITIES),
    default="info",
    show_default=True,
    help="Least severe alert the channel gets.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(ch.KINDS),
    help="Alert kinds wanted (repeat; default: all).",
)
@click.option("--description", default="", help="A note shown in `channels list`.")
@as_option
@format_option
@pass_cli
def add_cmd(
    cli: CliContext,
    account: str | None,
    operators: bool,
    kind: str,
    target: str,
    min_severity: str,
    kinds: tuple[str, ...],
    description: str,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Add a channel. A webhook's signing secret is printed once: store it in the receiver.

    \b
    Examples:
      meterhouse notify channels add --account acme --type webhook \\
          --target https://hooks.acme.example/meterhouse --min-severity warning
      meterhouse notify channels add --account acme --type email --target ops@acme.example
      meterhouse notify channels add --operators --type slack --target https://hooks.slack.com/...
    """
    owner = _owner(account, operators)
    fields = {
        "type": kind,
        "target": target,
        "min_severity": min_severity,
        "kinds": list(kinds),
        "description": description,
    }
    with backend(cli) as notifier:
        created = notifier.add(owner, fields, acting_user)
    channel = created["channel"]
    if fmt != "table":  # for scripts: the channel, and its secret this once
        record = {**channel, "kinds": ",".join(channel.get("kinds", []))}
        record["secret"] = created.get("secret", "")
        click.echo(render_dicts(to_jsonable([record]), fmt))
        return
    click.echo(f"channel {channel['channel_id']} added for {ch.describe_owner(owner)}")
    if created.get("secret"):
        click.echo(f"signing secret (shown once; the receiver checks with it): {created['secret']}")
    click.echo(
        f"try it: meterhouse notify channels test {channel['channel_id']} "
        + ("--operators" if not owner else f"--account {owner}")
    )


@channels.command("list")
@owner_options
@format_option
@pass_cli
def list_cmd(cli: CliContext, account: str | None, operators: bool, fmt: str) -> None:
    """List channels with their health: ok, failing (retrying), dead (gave up), untried."""
    owner = _owner(account, operators)
    with backend(cli) as notifier:
        found = notifier.channels(owner)
    rows = [{**row, "kinds": ",".join(row["kinds"]) or "all"} for row in found]
    click.echo(render_dicts(to_jsonable(rows), fmt) if rows else _none(fmt, owner))


def _none(fmt: str, owner: str) -> str:
    if fmt == "json":
        return "[]"
    return (
        f"no channels for {ch.describe_owner(owner)}; add one with `meterhouse notify channels add`"
    )


@channels.command("test")
@click.argument("channel_id")
@owner_options
@as_option
@format_option
@pass_cli
def test_cmd(
    cli: CliContext,
    channel_id: str,
    account: str | None,
    operators: bool,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Send a test notification to CHANNEL_ID now; exits 1 when the channel refuses it."""
    owner = _owner(account, operators)
    with backend(cli) as notifier:
        result = notifier.test(owner, channel_id, acting_user)
    if not result["ok"]:
        raise click.ClickException(
            f"channel {channel_id} failed (code {result['response_code']}): {result['error']}"
        )
    echo_outcome(
        fmt,
        f"test notification delivered to {channel_id} (code {result['response_code']})",
        to_jsonable({"channel_id": channel_id, **result}),
    )


@channels.command("remove")
@click.argument("channel_id")
@owner_options
@as_option
@format_option
@pass_cli
def remove_cmd(
    cli: CliContext,
    channel_id: str,
    account: str | None,
    operators: bool,
    acting_user: str | None,
    fmt: str,
) -> None:
    """Remove a channel (audited); nothing more is sent to it."""
    owner = _owner(account, operators)
    with backend(cli) as notifier:
        notifier.remove(owner, channel_id, acting_user)
    echo_outcome(
        fmt,
        f"channel {channel_id} removed from {ch.describe_owner(owner)}",
        {"channel_id": channel_id, "owner": owner, "removed": True},
    )


@notify.command("log")
@click.option("--account", help="Only this account's deliveries.")
@click.option("--operators", is_flag=True, help="Only the operators' deliveries.")
@click.option("--alert", default="", help="Only this alert name.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@format_option
@pass_cli
def log_cmd(
    cli: CliContext, account: str | None, operators: bool, alert: str, limit: int, fmt: str
) -> None:
    """Delivery attempts, newest first: outcome sent, retrying (will be retried), dead
    (given up) or failed (a test), with the answer code and error."""
    if account and operators:
        raise click.UsageError("--account or --operators, not both")
    owner = "" if operators else account
    with backend(cli) as notifier:
        rows = notifier.log(owner, limit, alert)
    if fmt == "json":
        click.echo(json.dumps(to_jsonable(rows), indent=2))
    elif rows:
        click.echo(render_dicts(rows, fmt))
    else:
        click.echo("no notifications sent yet")


@notify.command("alertmanager-config")
@click.option(
    "--template",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="The shipped alertmanager.yml.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="Write here (mode 600: it holds the alerts token) instead of printing.",
)
@pass_cli
def alertmanager_config(cli: CliContext, template: Path, output: Path | None) -> None:
    """Fill the shipped alertmanager.yml's ${MH_…} addresses, ports and secrets from settings.

    Needs MH_ALERTS_RECEIVER_URL, MH_ALERTS_WEBHOOK_TOKEN, MH_OPERATOR_EMAIL, MH_SMTP_HOST,
    MH_SMTP_PORT, MH_SMTP_FROM (MH_SMTP_USERNAME/PASSWORD when the relay wants them).
    Check the result with `amtool check-config FILE`.
    """
    try:
        rendered = render_file(template, cli.settings)
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is None:
        click.echo(rendered, nl=False)
        return
    output.touch(mode=0o600, exist_ok=True)
    output.chmod(0o600)
    output.write_text(rendered, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
