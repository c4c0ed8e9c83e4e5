"""`meterhouse dashboards`: generate the Grafana dashboards from their Python code."""

from __future__ import annotations

from pathlib import Path

import click

from meterhouse.access.grafana_sync import put_dashboard
from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.cli.users import grafana_api_options
from meterhouse.dashboards import DashboardsError, compare, custom, default_directory, write
from meterhouse.errors import MeterhouseError


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


@dashboards.group("custom")
def custom_group() -> None:
    """A team's own dashboard from a small YAML file (docs/dashboards.md, "Custom").

    \b
    Examples:
      meterhouse dashboards custom catalogue
      meterhouse dashboards custom validate data-team.yaml
      meterhouse dashboards custom render data-team.yaml --out data-team.json
      meterhouse dashboards custom sync data-team.yaml --url http://127.0.0.1:3000 \\
          --token-file grafana.token
    """


def _load(path: Path) -> custom.CustomBoard:
    try:
        return custom.load(path)
    except custom.CustomError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s) in {path}") from None


@custom_group.command("catalogue")
@format_option
def catalogue_cmd(fmt: str) -> None:
    """The widgets a custom dashboard can use: every panel of the built-in dashboards."""
    rows = [
        {"panel": key, "type": entry.panel.get("type", ""), "title": entry.panel["title"]}
        for key, entry in sorted(custom.catalogue().entries.items())
    ]
    click.echo(render_dicts(rows, fmt))


@custom_group.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@pass_cli
def validate_cmd(cli: CliContext, path: Path, fmt: str) -> None:
    """Check a custom dashboard file, then run every one of its queries on the store.

    Each problem names the file's line and the key (exit 1). The queries run with the
    file's account and variables over its time range, as Grafana would send them.
    """
    board = _load(path)
    with cli.open_store() as store:
        try:
            ran = custom.validate(store, board)
        except custom.CustomError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            raise click.ClickException(f"{len(exc.problems)} query problem(s)") from None
        except MeterhouseError as exc:
            raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(render_dicts([{"file": str(path), "valid": True, "queries": ran}], "json"))
        return
    click.echo(f"{path}: valid; {ran} queries ran on the store")


@custom_group.command("render")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Grafana JSON here (default: standard output).",
)
def render_cmd(path: Path, out_path: Path | None) -> None:
    """Write a custom dashboard file as Grafana dashboard JSON (schemaVersion 42)."""
    text = custom.render_json(_load(path))
    if out_path is None:
        click.echo(text, nl=False)
        return
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc}") from exc
    click.echo(f"wrote {out_path}", err=True)


@custom_group.command("sync")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@grafana_api_options
@format_option
def sync_cmd(path: Path, url: str, token: str, token_file: Path | None, fmt: str) -> None:
    """Put a custom dashboard into its account's Grafana folder (made by `meterhouse users
    sync-grafana`). Idempotent: an unchanged dashboard is not written again."""
    board = _load(path)
    if token_file is not None:
        token = token_file.read_text().strip()
    try:
        outcome = put_dashboard(url, token, board.account, custom.build(board).dashboard)
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        row = {"uid": board.uid, "account": board.account, "outcome": outcome}
        click.echo(render_dicts([row], "json"))
        return
    click.echo(f"{board.uid}: {outcome} in the folder of {board.account}")
