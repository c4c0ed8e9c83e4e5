"""`meterhouse dashboards`: generate the Grafana dashboards from their Python code."""

from __future__ import annotations

from pathlib import Path

import click

from meterhouse.dashboards import DashboardsError, compare, default_directory, write


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code (meterhouse/dashboards/ -> grafana/dashboards/*.json)."""


@dashboards.command("build")
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 and show a diff if the JSON files differ from the code.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (default: grafana/dashboards/ of the source tree).",
)
def build(check: bool, out_dir: Path | None) -> None:
    """Generate the seven dashboards' JSON from meterhouse/dashboards/.

    Grafana loads the folder through grafana/provisioning/dashboards/meterhouse.yaml, so
    after a change: build, commit the JSON, and `docker compose up` shows it.

    \b
    Examples:
      meterhouse dashboards build            # regenerate grafana/dashboards/*.json
      meterhouse dashboards build --check    # CI: fail if the committed JSON is stale
      meterhouse dashboards build --out /tmp/boards
    """
    directory = out_dir or default_directory()
    try:
        if check:
            differences = compare(directory)
            for difference in differences:
                click.echo(f"{difference.file_name}: {difference.problem}", err=True)
                if difference.diff:
                    click.echo(difference.diff, err=True)
            if differences:
                raise click.ClickException(
                    f"{len(differences)} dashboard file(s) in {directory} do not match the "
                    "code; run `meterhouse dashboards build` and commit the result"
                )
            click.echo(f"dashboards in {directory} match the code")
            return
        changed = write(directory)
    except DashboardsError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in changed:
        click.echo(f"wrote {path}")
    click.echo(f"{len(changed)} dashboard file(s) changed in {directory}")
