"""The `meterhouse` command line. Each sub-module adds one group of commands."""

from __future__ import annotations

import click

from meterhouse.cli.billing import billing
from meterhouse.cli.context import CliContext, global_options
from meterhouse.cli.credits import balance, budgets, grants, statement
from meterhouse.cli.dashboards import dashboards
from meterhouse.cli.demo import demo
from meterhouse.cli.jobs import events, jobs
from meterhouse.cli.keys import keys
from meterhouse.cli.notify import notify
from meterhouse.cli.prices import models, prices, reprice
from meterhouse.cli.run import run
from meterhouse.cli.store import migrate, settings_cmd, sql
from meterhouse.cli.tenants import accounts, projects, teams
from meterhouse.cli.users import users


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "Start here: `meterhouse demo` fills an embedded store with a month of sample data "
        'and prints an overview; `meterhouse sql "SHOW TABLES"` lists what you can query. '
        "Every option can also be set by an MH_* environment variable: `meterhouse settings`."
    ),
)
@global_options
@click.pass_context
def cli(ctx: click.Context, /, **options: object) -> None:
    """meterhouse: usage, credits, jobs and billing of a data and AI platform, in ClickHouse."""
    ctx.obj = CliContext.from_options(options)


for command in (
    migrate,
    sql,
    settings_cmd,
    run,
    demo,
    accounts,
    teams,
    projects,
    keys,
    users,
    balance,
    statement,
    grants,
    budgets,
    jobs,
    events,
    dashboards,
    prices,
    models,
    reprice,
    billing,
    notify,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="meterhouse")
