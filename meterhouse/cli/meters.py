"""`meterhouse meters`: define, list, show and remove meters (docs/events.md, "Meters").

Works on the store directly, or, while `meterhouse run` owns the embedded store, through
that service's meter API (POST/GET/DELETE /api/v1/meters), which then uses the new meter
at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import click

from meterhouse.cli.context import CliContext, pass_cli
from meterhouse.cli.output import format_option, render_dicts
from meterhouse.errors import MeterhouseError, StoreLockedError
from meterhouse.meters.definition import MeterError, new_ulid, parse
from meterhouse.meters.query import value_problem
from meterhouse.meters.registry import Registry, load_file
from meterhouse.service.client import ServiceClient
from meterhouse.store import open_store

COLUMNS = ("slug", "eventType", "aggregation", "valueProperty", "groupBy", "unit", "origin")


class MeterBackend(Protocol):
    def add(self, payload: dict[str, Any], actor: str) -> dict[str, Any]: ...
    def list(self) -> list[dict[str, Any]]: ...
    def show(self, slug: str) -> dict[str, Any]: ...
    def remove(self, slug: str, actor: str) -> dict[str, Any]: ...


class StoreMeters:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def add(self, payload: dict[str, Any], actor: str) -> dict[str, Any]:
        meter = parse(payload)
        problem = value_problem(self.registry.store, meter)
        if problem is not None:
            raise MeterError("valueProperty", problem)
        return self.registry.add(meter, meter_id=new_ulid(), actor=actor).as_openmeter()

    def list(self) -> list[dict[str, Any]]:
        return [meter.as_openmeter() for meter in self.registry.list()]

    def show(self, slug: str) -> dict[str, Any]:
        return self.registry.get(slug).as_openmeter()

    def remove(self, slug: str, actor: str) -> dict[str, Any]:
        return self.registry.remove(slug, actor=actor).as_openmeter()


class ServiceMeters(ServiceClient):
    """The same operations through the running service's meter API."""

    def add(self, payload: dict[str, Any], actor: str) -> dict[str, Any]:
        headers = {"X-Meterhouse-Actor": actor}
        return dict(self.request("POST", "/api/v1/meters", json=payload, headers=headers).json())

    def list(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v1/meters", params={"pageSize": "1000"}).json())

    def show(self, slug: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/meters/{slug}")

    def remove(self, slug: str, actor: str) -> dict[str, Any]:
        removed = self.show(slug)  # DELETE answers 204, without the meter
        headers = {"X-Meterhouse-Actor": actor}
        self.request("DELETE", f"/api/v1/meters/{removed['slug']}", headers=headers)
        return removed


@contextmanager
def meter_backend(cli: CliContext) -> Iterator[MeterBackend]:
    try:
        store = open_store(cli.settings)
    except StoreLockedError as exc:
        url, token = cli.service_target(exc)
        yield ServiceMeters(url, token)
        return
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc
    with store:
        file_meters = _run(lambda: load_file(cli.settings.meters_file))
        rollups = not cli.settings.clickhouse_cluster
        yield StoreMeters(Registry(store, file_meters, rollups=rollups))


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except MeterhouseError as exc:
        raise click.ClickException(str(exc)) from exc


def _shown(meter: dict[str, Any]) -> dict[str, Any]:
    annotations = meter.get("annotations") or {}
    return {
        **{c: meter.get(c, "") for c in COLUMNS[:4]},
        "groupBy": json.dumps(meter.get("groupBy") or {}),
        "unit": annotations.get("meterhouse.unit", ""),
        "origin": annotations.get("meterhouse.origin", ""),
    }


def _echo(meters: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(meters, indent=2))
    else:
        click.echo(render_dicts([_shown(m) for m in meters], fmt))


@click.group()
def meters() -> None:
    """Meters: what to count in free-form events, and how (OpenMeter's model).

    A meter names a CloudEvents type, an aggregation (SUM, COUNT, UNIQUE_COUNT, AVG, MIN,
    MAX, LATEST), the JSONPath of the value in the event's data, and named group-by
    JSONPaths. Meters in the versioned file MH_METERS_FILE are read when `meterhouse run`
    starts; these commands add and remove the others. A new meter counts the events
    stored before it too. Query meters with OpenMeter's API or SDK (docs/events.md).

    \b
    Examples:
      meterhouse meters add gpu_minutes --event-type gpu.usage --aggregation SUM \\
          --value-property '$.minutes' --group-by gpu='$.gpu' --unit minute
      meterhouse meters list --format json
      meterhouse meters show gpu_minutes
      meterhouse meters remove gpu_minutes
    """


@meters.command("add")
@click.argument("slug")
@click.option("--event-type", required=True, help="The CloudEvents type the meter counts.")
@click.option(
    "--aggregation",
    required=True,
    type=click.Choice(["SUM", "COUNT", "UNIQUE_COUNT", "AVG", "MIN", "MAX", "LATEST"]),
    help="How values are aggregated per window.",
)
@click.option("--value-property", default="", help="JSONPath of the value in data (not COUNT).")
@click.option(
    "--group-by",
    multiple=True,
    metavar="NAME=JSONPATH",
    help="A group the meter can be split by; repeat for more.",
)
@click.option("--unit", default="", help="What one unit is, e.g. minute or GB (statements).")
@click.option("--name", default="", help="Display name (default: the slug).")
@click.option("--description", default="", help="What the meter measures.")
@click.option(
    "--from-json",
    "from_json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Take the whole definition from OpenMeter's MeterCreate JSON in this file.",
)
@format_option
@pass_cli
def add_cmd(
    cli: CliContext,
    slug: str,
    event_type: str,
    aggregation: str,
    value_property: str,
    group_by: tuple[str, ...],
    unit: str,
    name: str,
    description: str,
    from_json: Path | None,
    fmt: str,
) -> None:
    """Add meter SLUG; its values include the events already stored."""
    groups: dict[str, str] = {}
    for entry in group_by:
        key, sep, path = entry.partition("=")
        if not sep:
            raise click.UsageError(f"--group-by {entry!r}: write NAME=JSONPATH, e.g. gpu=$.gpu")
        groups[key] = path
    payload: dict[str, Any] = {
        "slug": slug,
        "eventType": event_type,
        "aggregation": aggregation,
        "groupBy": groups,
        "unit": unit,
        "name": name,
        "description": description,
    }
    if value_property:
        payload["valueProperty"] = value_property
    if from_json is not None:
        loaded = json.loads(from_json.read_text())
        if not isinstance(loaded, dict):
            raise click.UsageError(f"{from_json}: expected a JSON object (MeterCreate)")
        payload = {**loaded, "slug": slug}
    with meter_backend(cli) as backend:
        made = _run(lambda: backend.add(payload, cli.actor))
    _echo([made], fmt)


@meters.command("list")
@format_option
@pass_cli
def list_cmd(cli: CliContext, fmt: str) -> None:
    """Every meter, the file's and the added ones, by slug."""
    with meter_backend(cli) as backend:
        found = _run(backend.list)
    if not found and fmt == "table":
        click.echo("no meters; add one with `meterhouse meters add` or MH_METERS_FILE")
        return
    _echo(found, fmt)


@meters.command("show")
@click.argument("slug")
@format_option
@pass_cli
def show_cmd(cli: CliContext, slug: str, fmt: str) -> None:
    """One meter, by slug or id."""
    with meter_backend(cli) as backend:
        found = _run(lambda: backend.show(slug))
    _echo([found], fmt)


@meters.command("remove")
@click.argument("slug")
@format_option
@pass_cli
def remove_cmd(cli: CliContext, slug: str, fmt: str) -> None:
    """Remove meter SLUG (audited) and print it. Its events stay stored; adding it again
    counts them."""
    with meter_backend(cli) as backend:
        removed = _run(lambda: backend.remove(slug, cli.actor))
    if fmt == "table":
        click.echo(f"removed meter {removed['slug']}")
    else:
        _echo([removed], fmt)
