"""`meterhouse spool list|inspect|replay`: what the ingest spool had to set aside.

Damaged records (quarantine/) and records ClickHouse refused for good (dead-letter/) are
kept, never dropped (docs/durability.md, "Disk faults and damaged records"). An operator
lists them, looks inside one, and after fixing the cause (a migration, a column type)
puts it back into the spool with ``replay``: the drain then writes it like any other
record, skipping events that are already stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from exporters.spool import codec
from exporters.spool.log import SegmentLog, SpoolError
from exporters.spool.quarantine import Kept
from exporters.spool.replay import ReplayError, find, folders, payload_of, replay
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.jsonable import to_jsonable
from meterhouse.service.client import ServiceClient
from meterhouse.settings import Settings, default_data_dir
from meterhouse.store.chdb_backend import chdb_path

LIST_COLUMNS = ("kind", "name", "bytes", "reason", "kept_at")
SAMPLE_ROWS = 3


def spool_dir(settings: Settings) -> Path:
    """Where `meterhouse run` keeps its spool (collectors/service_hook.py, spool_directory)."""
    if settings.spool_dir:
        return Path(settings.spool_dir).expanduser().resolve()
    if settings.clickhouse_url.startswith("chdb://"):
        return chdb_path(settings.clickhouse_url) / "meterhouse-spool"
    raise click.UsageError(
        "with a ClickHouse server the spool is under "
        f"{default_data_dir() / 'spool'}/<host>-<port>-<database>: pass it as MH_SPOOL_DIR"
    )


def describe(entry: Kept) -> dict[str, Any]:
    info: dict[str, Any] = entry.as_json()
    try:
        batch = codec.decode(payload_of(entry))
    except Exception as exc:  # damaged bytes fail in any way: say so, show the head
        info["decodes"] = False
        info["decode_error"] = f"{type(exc).__name__}: {exc}"
        info["head_hex"] = entry.path.read_bytes()[:64].hex()
        return info
    info["decodes"] = True
    info["events"] = batch.events
    info["tables"] = {
        name: {
            "rows": table.num_rows,
            "sample": to_jsonable(table.slice(0, SAMPLE_ROWS).to_pylist()),
        }
        for name, table in batch.tables.items()
    }
    return info


@click.group()
def spool() -> None:
    """Records the ingest spool set aside: damaged ones and ones ClickHouse refused.

    \b
    Examples:
      meterhouse spool list
      meterhouse spool inspect 00000000000000000001-000000002048
      meterhouse spool replay 00000000000000000001-000000002048   # after fixing the cause
    The spool is MH_SPOOL_DIR, or meterhouse-spool inside the embedded store's directory.
    """


@spool.command("list")
@format_option
@pass_cli
def list_cmd(cli: CliContext, fmt: str) -> None:
    """List kept records, oldest first (quarantine: damaged; dead-letter: refused)."""
    directory = spool_dir(cli.settings)
    rows = [
        {column: entry.as_json()[column] for column in LIST_COLUMNS}
        for folder in folders(directory)
        for entry in folder.entries()
    ]
    if not rows and fmt == "table":
        click.echo(f"nothing set aside in {directory}")
        return
    click.echo(render_dicts(rows, fmt))


@spool.command("inspect")
@click.argument("name")
@pass_cli
def inspect_cmd(cli: CliContext, name: str) -> None:
    """Show one kept record as JSON: where it was, why, and what it holds if it decodes."""
    try:
        entry = find(spool_dir(cli.settings), name)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(describe(entry), indent=2, default=str))


@spool.command("replay")
@click.argument("name")
@pass_cli
def replay_cmd(cli: CliContext, name: str) -> None:
    """Put a kept record back into the spool; the drain writes it (duplicates skipped).

    While `meterhouse run` owns the spool, the record goes back through it (its admin
    token from the owner file or MH_ADMIN_TOKEN). A record that does not decode cannot be
    replayed.
    """
    directory = spool_dir(cli.settings)
    try:
        log = SegmentLog(directory, max_bytes=1 << 62, segment_bytes=64 * 1024 * 1024)
    except SpoolError:
        _replay_through_service(cli, name)
        return
    try:
        replay(log, name)
    except (ReplayError, SpoolError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        log.close()
    click.echo(f"{name} is back in the spool {directory}; `meterhouse run` drains it")


def _replay_through_service(cli: CliContext, name: str) -> None:
    url, token = cli.service_target()
    client = ServiceClient(url, token, timeout=60)
    try:
        client.request("POST", f"/api/v1/spool/replay/{name}")
    finally:
        client.close()
    click.echo(f"{name} is back in the spool of {url}; it drains now")
