"""`prices sync`, `models list|show` and `reprice`: the LLM catalog and corrections.

The catalog is the genai-prices snapshot bundled with meterhouse (meterhouse/rating);
`prices sync` records it, with its history, in the ``model_prices`` table; `models` shows
it the way the product's Models section does; `reprice` re-rates stored usage on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import click
from genai_prices.types import ModelPrice, TieredPrices

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import echo_outcome, format_option, render_dicts, render_rows
from meterhouse.errors import MeterhouseError
from meterhouse.jsonable import to_jsonable
from meterhouse.rating.catalog import Catalog, CatalogModel
from meterhouse.rating.catalog_rows import PRICE_COLUMNS, Period, price_periods
from meterhouse.rating.reprice import reprice as reprice_usage
from meterhouse.rating.sync import SyncResult, sync_model_prices
from meterhouse.store.base import Store

SHOW_CHANGES_UP_TO: Final = 50
PRICE_LABELS: Final = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cache_read_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
}
HISTORY_COLUMNS: Final = (
    "effective_from",
    "effective_to",
    *PRICE_COLUMNS,
    "tiers",
    "catalog_version",
    "synced_at",
)
# This month's calls and credits per catalog model, over every account (UTC month: the
# catalog is the platform's, not one account's). event_time bounds prune old partitions.
USAGE_SQL: Final = """
SELECT provider, item, count() AS calls, sum(credits) AS credits
FROM usage_events
WHERE kind = 'model' AND event_time >= toStartOfMonth(now('UTC'))
GROUP BY provider, item
"""


def _fail(exc: MeterhouseError) -> click.ClickException:
    return click.ClickException(str(exc))


# ---------------------------------------------------------------------------- prices


@click.group()
def prices() -> None:
    """The LLM price catalog as stored in ClickHouse (table model_prices)."""


@prices.command("sync")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "--details/--no-details",
    default=None,
    help=f"List every changed row (default: when at most {SHOW_CHANGES_UP_TO} changed).",
)
@format_option
@pass_cli
def prices_sync(cli: CliContext, dry_run: bool, details: bool | None, fmt: str) -> None:
    """Refresh model_prices from the bundled genai-prices catalog, keeping history.

    New price periods are added; a changed price closes the old row and starts a new one
    from now; a period the catalog dropped is closed now. Rows already in force are never
    rewritten, so a statement of a past month reads the same after any sync. Running it
    twice changes nothing the second time. Stored usage keeps its credits: use
    `meterhouse reprice` to re-rate it on purpose. Each sync that changes something is
    recorded in audit_log (action prices.sync).

    \b
    Examples:
      meterhouse prices sync --dry-run
      meterhouse prices sync
      meterhouse sql "SELECT * FROM model_prices FINAL WHERE model_id = 'gpt-4o'"
    """
    with cli.open_store() as store:
        try:
            result = sync_model_prices(store, actor=cli.actor, dry_run=dry_run)
        except MeterhouseError as exc:
            raise _fail(exc) from exc
    echo_outcome(fmt, sync_report(result, details), result.summary())


def sync_report(result: SyncResult, details: bool | None = None) -> str:
    """The counts line, and the changed rows when asked or when they are few."""
    verb = "would change" if result.dry_run else "changed"
    head = (
        f"model_prices {verb}: {result.count('added')} added, {result.count('closed')} closed, "
        f"{result.count('updated')} updated, {result.unchanged} unchanged "
        f"(catalog {result.catalog_version})"
    )
    if not result.changed:
        return f"{head}\nAlready in step with the catalog; nothing written."
    show = details if details is not None else len(result.changes) <= SHOW_CHANGES_UP_TO
    if not show:
        return f"{head}\n(--details lists the {len(result.changes)} changed rows)"
    columns = ("change", "provider", "model_id", "effective_from", "effective_to", *PRICE_COLUMNS)
    rows = [[item.change, *(item.row[name] for name in columns[1:])] for item in result.changes]
    return f"{head}\n{render_rows(columns, rows, 'table')}"


# ---------------------------------------------------------------------------- models


@click.group()
def models() -> None:
    """The catalog of LLMs on offer, with their prices (the Models section)."""


@models.command("list")
@click.option("--provider", help="Only this provider, e.g. openai, anthropic, google.")
@click.option("--search", help="Text in the model id or name, or a name the model answers to.")
@click.option(
    "--usage/--no-usage",
    default=True,
    show_default=True,
    help="Add this month's calls and credits per model, when the store has usage.",
)
@format_option
@pass_cli
def models_list(
    cli: CliContext, provider: str | None, search: str | None, usage: bool, fmt: str
) -> None:
    """List the catalog: provider, model, context window and USD prices per million tokens.

    Prices are those in force now (the base price of tiered ones; `models show` has the
    tiers). With usage in the store, calls_this_month and credits_this_month show what
    every account used this month (UTC).

    \b
    Examples:
      meterhouse models list --provider anthropic
      meterhouse models list --search gpt-4o --format csv
      meterhouse models list --no-usage --format json
    """
    catalog = Catalog.load()
    if provider and not catalog.models(provider):
        known = sorted({m.provider for m in catalog.models()})
        raise click.BadParameter(
            f"no provider {provider!r} in the catalog; known: {', '.join(known)}",
            param_hint="--provider",
        )
    found = catalog.models(provider, search)
    now = datetime.now(UTC)
    items = [_list_entry(model, now) for model in found]
    if usage and items:
        _add_usage(cli, items)
    if not items:
        click.echo("no model matches; try a shorter --search or leave out --provider", err=True)
    click.echo(render_dicts(items, fmt))


def _list_entry(model: CatalogModel, now: datetime) -> dict[str, Any]:
    period = current_period(model, now)
    return {
        "provider": model.provider,
        "model_id": model.model_id,
        "name": model.name,
        "context_window": model.context_window,
        **{PRICE_LABELS[key]: base_price(period.prices, key) for key in PRICE_COLUMNS},
    }


def _add_usage(cli: CliContext, items: list[dict[str, Any]]) -> None:
    """Add this month's usage columns; left out (with a note) when the store cannot say."""
    try:
        with cli.open_store() as store:
            result = store.query(USAGE_SQL)
    except (MeterhouseError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"note: usage columns left out: {message}", err=True)
        return
    used = {(row[0], row[1]): (row[2], row[3]) for row in result.rows}
    if not used:
        return
    for item in items:
        calls, credits = used.get((item["provider"], item["model_id"]), (0, Decimal(0)))
        item["calls_this_month"] = calls
        item["credits_this_month"] = _plain(credits)


@models.command("show")
@click.argument("model")
@click.option("--provider", default="", help="Provider the name is sent with (openai, ...).")
@format_option
@pass_cli
def models_show(cli: CliContext, model: str, provider: str, fmt: str) -> None:
    """Show MODEL's catalog entry and its price history from model_prices.

    MODEL is a name as platforms send it: gpt-4o-2024-08-06, openai/gpt-4o,
    claude-sonnet-4-5... With --format csv the price history is printed, one row per period.

    \b
    Examples:
      meterhouse models show gpt-4o
      meterhouse models show openai/gpt-4o-2024-08-06
      meterhouse models show claude-3-5-sonnet --provider aws.bedrock --format json
    """
    found = Catalog.load().resolve(model, provider)
    if found is None:
        given = f"{model!r}" + (f" from provider {provider!r}" if provider else "")
        raise click.ClickException(
            f"no catalog model answers to {given}; `meterhouse models list --search "
            f"{model.rsplit('/', 1)[-1][:12]}` lists close names"
        )
    entry = show_entry(found, datetime.now(UTC))
    history, note = _history(cli, found)
    if fmt == "json":
        click.echo(json.dumps(to_jsonable({"model": entry, "history": history}), indent=2))
        return
    if fmt == "csv":
        click.echo(
            render_rows(
                ("provider", "model_id", *HISTORY_COLUMNS),
                [
                    [found.provider, found.model_id, *(h[c] for c in HISTORY_COLUMNS)]
                    for h in history
                ],
                "csv",
            )
        )
        return
    width = max(len(name) for name in entry)
    for name, value in entry.items():
        shown = "" if value is None else to_jsonable(value)
        click.echo(f"{name.ljust(width)}  {shown}")
    click.echo("\nprice history (model_prices):")
    if note:
        click.echo(note)
    else:
        click.echo(render_dicts(history, "table"))


def show_entry(model: CatalogModel, now: datetime) -> dict[str, Any]:
    period = current_period(model, now)
    tiers = {
        key: {"base": str(value.base), "above": [[t.start, str(t.price)] for t in value.tiers]}
        for key, value in sorted(vars(period.prices).items())
        if isinstance(value, TieredPrices)
    }
    return {
        "provider": model.provider,
        "provider_name": model.provider_name,
        "model_id": model.model_id,
        "name": model.name,
        "context_window": model.context_window,
        "deprecated": model.deprecated,
        **{PRICE_LABELS[key]: base_price(period.prices, key) for key in PRICE_COLUMNS},
        "tiered_prices": json.dumps(tiers) if tiers else "",
        "time_of_day_prices": "yes" if period.time_of_day else "",
        "price_since": period.start,
    }


def _history(cli: CliContext, model: CatalogModel) -> tuple[list[dict[str, Any]], str]:
    """The stored periods, oldest first, or an empty list and a note saying why."""
    try:
        with cli.open_store() as store:
            rows = price_history(store, model.provider, model.model_id)
    except (MeterhouseError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        return [], f"(not available: {message})"
    if not rows:
        return [], "(none stored yet: run `meterhouse prices sync`)"
    return rows, ""


def price_history(store: Store, provider: str, model_id: str) -> list[dict[str, Any]]:
    result = store.query(
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM model_prices FINAL "
        "WHERE provider = {p:String} AND model_id = {m:String} "
        "ORDER BY effective_from, synced_at",
        {"p": provider, "m": model_id},
    )
    return [{name: _plain(value) for name, value in row.items()} for row in result.dicts()]


def _plain(value: Any) -> Any:
    """Decimals without trailing zeros (2.5, not 2.500000000000); exact all the same."""
    return value.normalize() if isinstance(value, Decimal) else value


def current_period(model: CatalogModel, now: datetime) -> Period:
    """The catalog period in force at ``now`` (time-of-day prices aside)."""
    periods: Sequence[Period] = price_periods(model.info)
    today = now.astimezone(UTC).date()
    started = [p for p in periods if p.start is None or p.start <= today]
    return started[-1] if started else periods[0]


def base_price(prices: ModelPrice, key: str) -> Decimal | None:
    """USD per million tokens; a tiered price's base (below its first threshold)."""
    value: Decimal | TieredPrices | None = getattr(prices, key, None)
    if isinstance(value, TieredPrices):
        value = value.base
    return value


# ---------------------------------------------------------------------------- reprice


@click.command()
@click.option("--account", "account_id", required=True, help="Account whose usage to re-rate.")
@click.option(
    "--from",
    "start",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="First local date (the account's time zone), YYYY-MM-DD.",
)
@click.option(
    "--to",
    "end",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Day after the last local date: the range is [from, to).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@format_option
@pass_cli
def reprice(
    cli: CliContext, account_id: str, start: datetime, end: datetime, dry_run: bool, fmt: str
) -> None:
    """Re-rate an account's stored usage for [--from, --to) with the current prices.

    For corrections: stored usage keeps the price it was rated with until this is run.
    Each usage event of the account whose local date is in the range is rated again with
    the bundled catalog, the shipped price book and the account's current plan; rows
    whose credits, USD or lines come out different are replaced, the account's
    usage_daily rows for the range are rebuilt and checked against usage_events to the
    last digit, and the change (events, credits and USD before and after) is written to
    audit_log (action usage.reprice). Other accounts and dates are never touched.

    \b
    Examples:
      meterhouse reprice --account acme --from 2026-10-01 --to 2026-11-01 --dry-run
      meterhouse reprice --account acme --from 2026-10-01 --to 2026-11-01
    """
    if start >= end:
        raise click.BadParameter(
            f"{end.date()} is not after --from {start.date()} (the range is [from, to))",
            param_hint="--to",
        )
    with cli.open_store() as store:
        try:
            result = reprice_usage(
                store, account_id, start.date(), end.date(), actor=cli.actor, dry_run=dry_run
            )
        except MeterhouseError as exc:
            raise _fail(exc) from exc
    summary = result.summary()
    for name in ("skipped", "price_versions_before", "price_versions_after"):
        summary[name] = _counts_text(summary[name])
    if fmt == "table":
        width = max(len(name) for name in summary)
        for name, value in summary.items():
            click.echo(f"{name.ljust(width)}  {to_jsonable(value)}")
    else:
        click.echo(render_dicts([summary], fmt))
    if dry_run:
        click.echo("dry run: nothing was written", err=True)
    elif not result.changed:
        click.echo("nothing to change: stored usage already has these prices", err=True)


def _counts_text(counts: dict[str, int]) -> str:
    return "; ".join(f"{name}: {count}" for name, count in counts.items()) or "-"
