"""How the CLI prints rows: aligned table for people, CSV and JSON for programs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import click

from meterhouse.jsonable import to_jsonable
from meterhouse.store.base import QueryResult

FORMATS = ("table", "csv", "json")
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for reading, csv or json for other programs.",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    jsonable = to_jsonable(value)
    return jsonable if isinstance(jsonable, str) else json.dumps(jsonable)


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [dict(zip(columns, (to_jsonable(v) for v in row), strict=True)) for row in rows],
            indent=2,
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line.rstrip(), rule, *(b.rstrip() for b in body), footer])


def render_result(result: QueryResult, fmt: str) -> str:
    return render_rows(result.column_names, result.rows, fmt)


def render_dicts(items: Sequence[dict[str, Any]], fmt: str) -> str:
    columns = list(items[0]) if items else []
    return render_rows(columns, [list(item.values()) for item in items], fmt)


def keep_limit(rows: Sequence[Any], limit: int, what: str, hint: str) -> list[Any]:
    """The first ``limit`` of rows fetched with limit + 1; says on stderr when more exist.

    stderr, so the table, CSV or JSON on stdout stays whole for programs.
    """
    if len(rows) <= limit:
        return list(rows)
    click.echo(f"note: showing the first {limit} {what}; more match: {hint}", err=True)
    return list(rows[:limit])
