"""The `meterhouse` command line. Each sub-module adds one group of commands.

The top-level group imports a command's module only when that command runs (or its own
--help is asked): the modules pull in chdb, pyarrow, stripe and pydantic, which take
seconds to load, and `meterhouse --help` or `--version` needs none of them. The index
below is what `meterhouse --help` prints, section by section.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from meterhouse.errors import MeterhouseError

# Where `meterhouse sql` leaves the user's query, so errors can point into it.
QUERY_META = "meterhouse.query"

# name -> (module, attribute, one line of --help); the sections give the help its order.
SECTIONS: dict[str, dict[str, tuple[str, str, str]]] = {
    "Start here": {
        "demo": ("demo", "demo", "Fill the store with a realistic month and print an overview."),
        "migrate": ("store", "migrate", "Create or update the ClickHouse schema."),
        "sql": ("store", "sql", "Run ad-hoc SQL over the usage tables."),
        "settings": ("store", "settings_cmd", "Every MH_* setting and its value in force."),
        "run": ("run", "run", "Serve the HTTP API: ingest, read APIs, /metrics."),
    },
    "Accounts and access": {
        "accounts": ("tenants", "accounts", "Accounts: organisation, time zone, plan."),
        "teams": ("tenants", "teams", "Teams inside an account."),
        "projects": ("tenants", "projects", "Projects inside an account or team."),
        "users": ("users", "users", "Users, their roles and per-tenant access."),
        "keys": ("keys", "keys", "API keys: ingest keys and personal read keys."),
    },
    "Credits": {
        "balance": ("credits", "balance", "Credit balance of an account."),
        "statement": ("credits", "statement", "Monthly usage statement, like a bank's."),
        "grants": ("credits", "grants", "Credit grants: allowances, top-ups, promotions."),
        "budgets": ("credits", "budgets", "Monthly budgets and how much of them is used."),
    },
    "Jobs": {
        "jobs": ("jobs", "jobs", "What is defined, runs now, ran, or is stuck."),
        "events": ("jobs", "events", "Job logs: one run's story, or recent errors."),
    },
    "Prices and billing": {
        "models": ("prices", "models", "The LLM catalog on offer, with prices."),
        "prices": ("prices", "prices", "Sync the LLM price catalog into ClickHouse."),
        "reprice": ("prices", "reprice", "Re-rate stored usage with current prices."),
        "billing": ("billing", "billing", "Stripe mirror, allowances, reconciliation."),
        "meters": ("meters", "meters", "Meters over free-form events (OpenMeter's model)."),
    },
    "Dashboards": {
        "dashboards": ("dashboards", "dashboards", "Build or check the Grafana dashboards."),
    },
    "Operations": {
        "notify": ("notify", "notify", "Alert channels per account, the delivery log."),
        "spool": ("spool", "spool", "Ingest spool: quarantined and dead-letter batches."),
        "compose-env": ("compose", "compose_env", "Generate the docker-compose secrets file."),
    },
}
LAZY: dict[str, tuple[str, str, str]] = {
    name: entry for section in SECTIONS.values() for name, entry in section.items()
}


class LazyGroup(click.Group):
    """A group whose listed commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY:
            module, attribute, _ = LAZY[cmd_name]
            loaded = getattr(importlib.import_module(f"meterhouse.cli.{module}"), attribute)
            assert isinstance(loaded, click.Command)
            self.add_command(loaded, cmd_name)
            command = loaded
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and name not in self.list_commands(ctx) and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} `meterhouse --help` lists them all.")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except (click.ClickException, MeterhouseError) as exc:
            raise _explained(ctx, exc) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        shown: set[str] = set()
        for title, entries in SECTIONS.items():
            with formatter.section(title):
                formatter.write_dl([(name, entry[2]) for name, entry in entries.items()])
            shown.update(entries)
        # Commands added eagerly with add_command (not in the index) still show.
        others = [
            (name, command.get_short_help_str(60))
            for name, command in sorted(self.commands.items())
            if name not in shown and not command.hidden
        ]
        if others:
            with formatter.section("More"):
                formatter.write_dl(others)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "Start here: `meterhouse demo` fills an embedded store with a month of sample data "
        'and prints an overview; `meterhouse sql "SHOW TABLES"` lists what you can query. '
        "Each command has its own --help with examples. Every option can also be set by an "
        "MH_* environment variable: `meterhouse settings`."
    ),
)
@click.version_option(package_name="meterhouse", prog_name="meterhouse")
@click.option(
    "--clickhouse-url",
    help="Store to use (MH_CLICKHOUSE_URL): chdb:///dir for the embedded engine, "
    "http(s)://user:pass@host:8123/db for a server.",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", type=click.Choice(["json", "console"]))
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """meterhouse: usage, credits, jobs and billing of a data and AI platform, in ClickHouse."""
    from meterhouse.cli.context import CliContext

    ctx.obj = CliContext.from_options(options)


def _explained(ctx: click.Context, exc: click.ClickException | MeterhouseError) -> Exception:
    """The failure as a ClickException whose message says what to do (cli/errors.py).

    Every message passes here, so no URL password reaches the terminal.
    """
    from meterhouse.cli.errors import explain
    from meterhouse.settings import mask_passwords

    original = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    context = ctx.find_object(_context_type())
    better = None
    if context is not None:
        better = explain(
            exc,
            store_url=context.shown_store_url,
            account_ids=context.account_ids,
            query=str(ctx.meta.get(QUERY_META, "")),
        )
        if better is not None and context.store_was_missing() and "meterhouse migrate" in better:
            better = context.no_store_message()
    message = mask_passwords(better or original)
    if isinstance(exc, click.ClickException) and message == original:
        return exc
    return click.ClickException(message)  # exit code 1, as every non-usage failure


def _context_type() -> type[Any]:
    from meterhouse.cli.context import CliContext

    return CliContext


def main() -> None:
    cli(prog_name="meterhouse")
