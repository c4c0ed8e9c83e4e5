"""`meterhouse demo`: fill the store with a realistic month and print an overview."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import render_dicts
from meterhouse.demo.anchor import demo_end, remember_end
from meterhouse.demo.billing_seed import billing_source_note, seed_billing
from meterhouse.demo.generator import generate
from meterhouse.demo.runner import run_demo
from meterhouse.demo.summary import account_overview, credits_overview
from meterhouse.errors import MeterhouseError
from meterhouse.rating.rater import Rater
from meterhouse.rating.sync import sync_model_prices
from meterhouse.store.migrations import Topology, migrate


def _progress(step: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    click.echo(
        f"\r  {step:<40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        err=True,
        nl=done >= total,
    )


@click.command()
@click.option(
    "--days",
    type=int,
    help="Days of history to make (default: from the start of last month until --end).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed, same data.")
@click.option("--scale", default=1.0, show_default=True, help="Multiplies the event volume.")
@click.option("--end", "end_text", help="End of the generated period (ISO time, UTC); default now.")
@click.option(
    "--via-api",
    is_flag=True,
    help="Send the events through the HTTP ingest API (started in this process) instead of "
    "writing them directly: slower, but the same path platforms use.",
)
@pass_cli
def demo(
    cli: CliContext,
    days: int | None,
    seed: int,
    scale: float,
    end_text: str | None,
    via_api: bool,
) -> None:
    """Create the schema and a realistic month and a half of platform data, then print an overview.

    Five accounts on different plans and time zones, their teams, projects and users;
    model calls over several LLMs (one the catalog does not know, so unpriced events show);
    runs of scheduler, asset, webhook and notification jobs, some failing with logs, some
    running, one stuck. Running it again adds nothing twice: without --end it generates up
    to the end of the first run (same seed and size), and stored events are never stored
    again.
    """
    began = time.monotonic()
    with cli.open_store() as store:
        try:
            migrate(
                store,
                topology=Topology(cli.settings.clickhouse_cluster),
                job_log_ttl_days=cli.settings.job_log_ttl_days,
            )
            earlier = None if end_text else demo_end(store, seed=seed, days=days, scale=scale)
            if earlier is not None:
                click.echo(f"the demo ran before: generating up to its end, {earlier}", err=True)
            end = (
                datetime.fromisoformat(end_text).astimezone(UTC)
                if end_text
                else earlier or datetime.now(UTC)
            )
            synced = sync_model_prices(store, actor=cli.actor)  # the Models dashboard's prices
            click.echo(f"model prices: {synced.count('added')} rows added", err=True)
            click.echo("generating events …", err=True)
            data = generate(end, days=days, seed=seed, scale=scale)
            if via_api:
                from meterhouse.demo.via_api import run_demo_via_api

                summary = run_demo_via_api(
                    store, data, cli.settings, actor=cli.actor, progress=_progress
                )
            else:
                summary = run_demo(
                    store, data, Rater.default(), actor=cli.actor, progress=_progress
                )
            overview = account_overview(store, end)
            credits = credits_overview(store, end)
            billing = seed_billing(store, data, cli.actor, settings=cli.settings)
            remember_end(store, end, seed=seed, days=days, scale=scale)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc
    written = ", ".join(f"{table} {count}" for table, count in sorted(summary.rows.items()))
    click.echo(
        f"\nStored {summary.events} events for {summary.accounts} accounts "
        f"({written}; {summary.duplicates} duplicates skipped) "
        f"in {time.monotonic() - began:.1f}s.\n"
    )
    click.echo("This month, in each account's time zone:")
    click.echo(render_dicts(overview, "table"))
    click.echo("\nCredits now (balance = granted - consumed - expired), and budgets:")
    click.echo(render_dicts(credits, "table"))
    click.echo(f"\nBilling, {billing_source_note(cli.settings)}:")
    click.echo(render_dicts(billing, "table"))
    click.echo(
        "\nNext: `meterhouse statement --account acme` (a bank statement of credits), "
        "`meterhouse jobs active`, `meterhouse events --level error --since 24h`, "
        "`meterhouse models list --search gpt-4o`, "
        '`meterhouse sql "SELECT item, sum(credits) FROM usage_daily GROUP BY item"`, '
        "`meterhouse run` (the HTTP service)."
    )
