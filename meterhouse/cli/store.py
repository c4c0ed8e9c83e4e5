"""`migrate`, `sql` and `settings`: the store and its configuration."""

from __future__ import annotations

import sys

import click

from meterhouse.adhoc_sql import AdhocLimits, AdhocSqlError, run_adhoc
from meterhouse.cli import QUERY_META
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import echo_outcome, format_option, render_result, render_rows
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.settings import Settings, settings_markdown, settings_table, shown_values
from meterhouse.store.base import Store
from meterhouse.store.migrations import Topology, applied, load_migrations
from meterhouse.store.migrations import migrate as run_migrate


@click.command()
@click.option(
    "--status", is_flag=True, help="Only list the migrations and whether each is applied."
)
@format_option
@pass_cli
def migrate(cli: CliContext, status: bool, fmt: str) -> None:
    """Create or update the ClickHouse schema from clickhouse/schema/*.sql.

    Applies the numbered migrations not applied yet, in order; running it again changes
    nothing. A migration file edited after it was applied is refused: add a new one.
    """
    with cli.open_store() as store:
        try:
            if status:
                done = applied(store) if _has_migrations_table(store) else {}
                rows = [
                    (m.version, m.path.name, "applied" if m.version in done else "pending")
                    for m in load_migrations()
                ]
                click.echo(render_rows(["version", "file", "state"], rows, fmt))
                return
            applied_now = run_migrate(
                store,
                topology=Topology(cli.settings.clickhouse_cluster),
                job_log_ttl_days=cli.settings.job_log_ttl_days,
                progress=lambda m: click.echo(f"applying {m.path.name} …", err=True),
            )
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc
    sentence = (
        f"applied {len(applied_now)} migration(s); schema is up to date"
        if applied_now
        else "schema is up to date; nothing to apply"
    )
    echo_outcome(fmt, sentence, {"applied": [m.path.name for m in applied_now]})


def _has_migrations_table(store: Store) -> bool:
    return bool(
        store.query(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() "
            "AND name = 'schema_migrations'"
        ).scalar()
    )


@click.command()
@click.argument("query", required=False)
@format_option
@click.option("--write", is_flag=True, help="Allow statements that change data or schema.")
@pass_cli
def sql(cli: CliContext, query: str | None, fmt: str, write: bool) -> None:
    """Run ad-hoc SQL against the meterhouse database and print the result.

    QUERY is one statement, or '-' (or nothing) to read it from standard input. It is
    read-only unless --write is given, and bounded by MH_SQL_MAX_ROWS and
    MH_SQL_MAX_SECONDS. While `meterhouse run` holds the embedded store, the query is sent
    to that service instead.

    \b
    Examples:
      meterhouse sql "SHOW TABLES"
      meterhouse sql "SELECT account_id, sum(credits) FROM usage_events GROUP BY 1" --format csv
      echo "SELECT count() FROM job_logs WHERE level = 'error'" | meterhouse sql
    """
    text = query if query not in (None, "-") else sys.stdin.read()
    assert text is not None
    click.get_current_context().meta[QUERY_META] = text
    with cli.open_store() as store:
        limits = AdhocLimits.of(cli.settings, shared=store.capabilities.shared)
        try:
            result = run_adhoc(store, text, write=write, limits=limits)
        except (AdhocSqlError, StoreError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(render_result(result, fmt))
    if result.row_count >= limits.max_rows:
        click.echo(
            f"note: showing the first {limits.max_rows} rows (MH_SQL_MAX_ROWS); add a LIMIT "
            "or raise the setting to see more",
            err=True,
        )


@click.command("settings")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "markdown"]),
    default="table",
    show_default=True,
    help="markdown prints the table README.md carries.",
)
@pass_cli
def settings_cmd(cli: CliContext, fmt: str) -> None:
    """List every MH_* environment variable, its default, meaning and value in force."""
    if fmt == "markdown":
        click.echo(settings_markdown())
        return
    current = shown_values(cli.settings)  # secrets and URL passwords masked
    defaults = shown_values(Settings.model_construct())  # defaults only, no environment
    rows = []
    for variable, _, description in settings_table():
        name = variable.removeprefix("MH_").lower()
        rows.append((variable, current[name], defaults[name], description))
    click.echo(render_rows(["variable", "value", "default", "description"], rows, fmt))
