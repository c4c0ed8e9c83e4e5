"""`meterhouse run`: the long-running service."""

from __future__ import annotations

import errno

import click

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.errors import MeterhouseError, StoreLockedError
from meterhouse.service.runner import serve
from meterhouse.service.wiring import default_hooks


@click.command()
@click.option("--host", help="Address to listen on (MH_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (MH_PORT, default 8080; 0 = any free).")
@pass_cli
def run(cli: CliContext, host: str | None, port: int | None) -> None:
    """Serve the HTTP API: /healthz, /readyz, /metrics, /api/v1/sql and the collectors.

    Applies pending migrations first, then owns the store until stopped (Ctrl-C). While it
    runs, every other command on the same machine uses the store through it (reads and
    changes alike) instead of opening the store.
    """
    settings = cli.with_settings(host=host, port=port)
    try:
        serve(settings, default_hooks())
    except StoreLockedError as exc:
        # The one command that needs the data directory itself: it cannot go through the
        # service that holds it.
        running = f" (serving {exc.service_url})" if exc.service_url else ""
        raise click.ClickException(
            f"{cli.store_dir} is held by process {exc.owner_pid or '?'}{running}; one "
            "`meterhouse run` owns an embedded store at a time. Use that one, stop it first, "
            "or point MH_CLICKHOUSE_URL at another directory."
        ) from exc
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise click.ClickException(
            f"port {settings.port} on {settings.host} is in use by another program (perhaps "
            "another `meterhouse run`): stop it, or choose another port with --port or "
            "MH_PORT (--port 0 picks a free one)."
        ) from None
