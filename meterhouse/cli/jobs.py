"""`jobs` (active, runs, stuck, poll) and `events`: what runs, what ran, what failed and why."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

import click

from meterhouse import records as r
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, keep_limit, render_rows
from meterhouse.errors import MeterhouseError
from meterhouse.jobs import events as ev
from meterhouse.jobs import queries
from meterhouse.jobs.stuck import StuckPolicy, find_stuck_runs
from meterhouse.jsonable import Seconds
from meterhouse.store.base import Store

T = TypeVar("T")
CELL_WIDTH: Final = 72
account_option = click.option(
    "--account", "account_id", default="", help="Only this account (default: every account)."
)


def _query(cli: CliContext, action: Callable[[Store], T]) -> T:
    with cli.open_store() as store:
        try:
            return action(store)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc


def _cell(value: Any, width: int) -> Any:
    """Shorter cells for the table layout; csv and json keep every value whole."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        flat = " ".join(value.split())
        return flat if len(flat) <= width else flat[: width - 1] + "…"
    return value


def _echo(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    if fmt == "table":
        values = [[_cell(row.get(c), CELL_WIDTH) for c in columns] for row in rows]
    else:
        values = [[row.get(c) for c in columns] for row in rows]
    click.echo(render_rows(list(columns), values, fmt))


@click.group()
def jobs() -> None:
    """Jobs: what is defined, what runs now, what ran, what is stuck.

    \b
    Start with `meterhouse jobs active`, follow a job with `meterhouse jobs runs --job J`,
    and read a run's log with `meterhouse events --run R`. Times are UTC.
    """


@jobs.command("active")
@account_option
@click.option("--kind", type=click.Choice(r.JOB_KINDS), help="Only jobs of this kind.")
@click.option("--all", "include_paused", is_flag=True, help="Also list paused jobs.")
@format_option
@pass_cli
def active(
    cli: CliContext, account_id: str, kind: str | None, include_paused: bool, fmt: str
) -> None:
    """Active jobs with their last run, runs running now and failures in the last 24 h.

    last_error is the error of the job's latest failed run, however old.

    \b
    Examples:
      meterhouse jobs active
      meterhouse jobs active --account acme --kind asset
      meterhouse jobs active --format json
    """
    now = datetime.now(UTC)
    rows = _query(
        cli,
        lambda s: queries.active_jobs(
            s, now, account_id=account_id, kind=kind or "", include_paused=include_paused
        ),
    )
    columns = ["account", "job", "kind", "name", "schedule"]
    columns += ["job_status"] if include_paused else []
    columns += ["last_status", "last_run_at", "last_run", "running", "failed_24h", "last_error"]
    _echo(rows, columns, fmt)


@jobs.command("runs")
@click.option("--job", "job_id", required=True, help="Job id, as `jobs active` lists it.")
@account_option
@click.option("--status", type=click.Choice(r.RUN_STATUSES), help="Only runs in this state.")
@click.option("--limit", default=20, show_default=True, help="Most runs to show, newest first.")
@format_option
@pass_cli
def runs(
    cli: CliContext, job_id: str, account_id: str, status: str | None, limit: int, fmt: str
) -> None:
    """The latest runs of one job: state, times, duration, credits and error.

    credits is what rating charged for the run (empty while it runs or when unrated).

    \b
    Examples:
      meterhouse jobs runs --job acme-nightly-aggregates
      meterhouse jobs runs --job acme-order-events --status failed --limit 5
    """
    rows = _query(
        cli,
        lambda s: queries.job_runs(
            s, job_id, account_id=account_id, status=status or "", limit=limit + 1
        ),
    )
    rows = keep_limit(rows, limit, "runs", "raise --limit or filter by --status")
    for row in rows:  # seconds are a number for programs, not an exact amount of money
        if isinstance(row.get("duration_s"), Decimal):
            row["duration_s"] = float(row["duration_s"])
    columns = [
        "account", "run", "status", "queued_at", "started_at", "finished_at",
        "duration_s", "credits", "error_type", "error_message",
    ]  # fmt: skip
    _echo(rows, columns, fmt)


@jobs.command("stuck")
@account_option
@format_option
@pass_cli
def stuck(cli: CliContext, account_id: str, fmt: str) -> None:
    """Runs still running far longer than their job usually takes.

    A run is stuck after MH_STUCK_RUN_MULTIPLE (default 3) times its job's typical
    duration: the median of its last MH_STUCK_RUN_HISTORY successful runs, or the
    typical_duration_ms of its definition when it has too few; or after
    MH_STUCK_RUN_MAX_SECONDS whatever the job.

    \b
    Examples:
      meterhouse jobs stuck
      MH_STUCK_RUN_MULTIPLE=2 meterhouse jobs stuck --account acme --format json
    """
    policy = StuckPolicy.from_settings(cli.settings)
    now = datetime.now(UTC)
    found = _query(cli, lambda s: find_stuck_runs(s, policy, now, account_id=account_id))
    columns = ["account", "job", "run", "kind", "started_at", "running_for", "expected", "reason"]
    rows = [
        {
            **v.as_row(),
            "running_for": Seconds(v.running_seconds),
            "expected": None if v.expected_seconds is None else Seconds(v.expected_seconds),
        }
        for v in found
    ]
    _echo(rows, columns, fmt)
    if fmt == "table" and found:
        click.echo(f"\nRead a run's log: meterhouse events --run {found[0].run.run_id}", err=True)


@jobs.command("poll")
@click.option("--once", is_flag=True, help="Pull once and exit (default: every interval).")
@click.option("--url", help="Platform base URL (MH_POLLER_URL).")
@format_option
@pass_cli
def poll(cli: CliContext, once: bool, url: str | None, fmt: str) -> None:
    """Pull jobs, runs and logs from a job platform's REST API into the store.

    For platforms that cannot push events. The endpoints it expects, the cursor it keeps
    in sync_state and its retries are described in docs/jobs.md. `meterhouse run` polls
    by itself when MH_POLLER_URL is set; this command is for a first backfill, cron, or
    checking the connection. Exits 1 when a stream could not be pulled.

    \b
    Examples:
      meterhouse jobs poll --once --url https://platform.example/api/v1
      MH_POLLER_URL=https://platform.example/api/v1 MH_POLLER_TOKEN=... meterhouse jobs poll
    """
    from collectors.poller import Poller

    settings = cli.with_settings(poller_url=url)
    if not settings.poller_url:
        raise click.UsageError("give the platform's URL: --url or MH_POLLER_URL")
    columns = ["stream", "pages", "items", "rejected", "rows_written", "duplicates", "cursor"]
    columns += ["skipped", "error"]
    failed = False
    with cli.open_store() as store:
        try:
            poller = Poller.from_settings(settings, store)
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            while True:
                result = poller.poll_once()
                failed = not result.ok
                _echo(result.rows(), columns, fmt)
                if once:
                    break
                time.sleep(settings.poller_interval_seconds)
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
        finally:
            poller.close()
    if failed:
        raise SystemExit(1)


@click.command("events")
@click.option("--run", "run_id", default="", help="Every log line of this run, oldest first.")
@click.option(
    "--level",
    type=click.Choice(r.LOG_LEVELS),
    help="This level and more severe ones (warning = warning and error).",
)
@click.option(
    "--since",
    help="Start of the window: 90s, 15m, 1h, 2d, 1w or an ISO time. Default 24h (not with --run).",
)
@click.option("--until", help="End of the window (same forms as --since). Default: now.")
@account_option
@click.option("--job", "job_id", default="", help="Only this job.")
@click.option("--kind", type=click.Choice(r.JOB_KINDS), help="Only jobs of this kind.")
@click.option(
    "--search", default="", help="Text in the message, error type or error message (any case)."
)
@click.option("--limit", default=50, show_default=True, help="Most lines to show.")
@click.option("-v", "--verbose", is_flag=True, help="Show stack traces.")
@format_option
@pass_cli
def events(
    cli: CliContext,
    run_id: str,
    level: str | None,
    since: str | None,
    until: str | None,
    account_id: str,
    job_id: str,
    kind: str | None,
    search: str,
    limit: int,
    verbose: bool,
    fmt: str,
) -> None:
    """Job execution logs: one run's story, or the errors of a time window.

    \b
    Examples:
      meterhouse events --level error                      # errors of the last 24 h
      meterhouse events --level error --since 1h --account acme
      meterhouse events --level warning --search "timed out" --since 2d
      meterhouse events --run run_3fad60795bf2061e --verbose
    """
    if not run_id and not level and not since and not search:
        raise click.UsageError(
            "say which logs: --run RUN_ID, or a window with --level/--since/--search "
            "(e.g. --level error --since 1h)"
        )
    now = datetime.now(UTC)
    try:
        start = ev.parse_since(since, now) if since else None
        if start is None and not run_id:
            start = ev.parse_since("24h", now)
        end = ev.parse_since(until, now) if until else None
    except MeterhouseError as exc:
        raise click.BadParameter(str(exc)) from exc
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(
            f"{end:%Y-%m-%d %H:%M:%S} UTC is not after --since {start:%Y-%m-%d %H:%M:%S} UTC; "
            "--since is the start of the window and --until its end (e.g. --since 2d "
            "--until 1d)",
            param_hint="--until",
        )
    query = ev.LogQuery(
        run_id=run_id,
        job_id=job_id,
        account_id=account_id,
        kind=kind or "",
        min_level=level or "",
        since=start,
        until=end,
        search=search,
        limit=limit + 1,
        with_stack_trace=verbose,
    )
    rows = _query(cli, lambda s: ev.search_logs(s, query))
    rows = keep_limit(rows, limit, "lines", "raise --limit or narrow --since/--until")
    columns = ["time", "account", "job", "run", "level", "message", "error_type", "error_message"]
    if verbose and fmt == "table":
        _echo_stories(rows)
        return
    _echo(rows, [*columns, "stack_trace"] if verbose else columns, fmt)
    if fmt == "table" and not rows:
        click.echo(_nothing_found(query), err=True)


def _echo_stories(rows: Sequence[dict[str, Any]]) -> None:
    """--verbose as a table: one block per line, so stack traces keep their lines."""
    for row in rows:
        head = [_cell(row["time"], CELL_WIDTH), row["account"], row["job"], row["run"]]
        click.echo("  ".join([*head, str(row["level"]).upper()]))
        click.echo(f"  {row['message']}")
        if row["error_type"] or row["error_message"]:
            click.echo(f"  {row['error_type']}: {row['error_message']}")
        for line in str(row.get("stack_trace") or "").splitlines():
            click.echo(f"    {line}")
        click.echo("")
    click.echo(f"({len(rows)} line{'s' if len(rows) != 1 else ''})")


def _nothing_found(query: ev.LogQuery) -> str:
    window = f" since {query.since:%Y-%m-%d %H:%M} UTC" if query.since else ""
    return f"No log lines{window} match; widen --since or drop a filter."
