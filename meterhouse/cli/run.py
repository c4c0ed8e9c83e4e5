"""`meterhouse run`: the long-running service."""

from __future__ import annotations

import errno

import click

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.errors import MeterhouseError
from meterhouse.service.runner import serve
from meterhouse.service.wiring import default_hooks


@click.command()
@click.option("--host", help="Address to listen on (MH_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (MH_PORT, default 8080; 0 = any free).")
@pass_cli
def run(cli: CliContext, host: str | None, port: int | None) -> None:
    """Serve the HTTP API: /healthz, /readyz, /metrics, /api/v1/sql and the collectors.

    Applies pending migrations first, then owns the store until stopped (Ctrl-C). While it
    runs, `meterhouse sql` on the same machine asks it instead of opening the store.
    """
    settings = cli.with_settings(host=host, port=port)
    try:
        serve(settings, default_hooks())
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
