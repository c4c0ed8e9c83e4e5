"""How the CLI prints rows: aligned table for people, CSV and JSON for programs.

Programs get machine values (meterhouse/jsonable.py): numbers as numbers, money as exact
decimal strings, fractions, seconds, ISO times. People get a table in which numbers are
right-aligned, each Decimal column shows the digits its values need and no trailing
zeros beyond them, shares show as percentages and durations as 6h 4m 27s.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import click

from meterhouse.jsonable import Ratio, Seconds, to_jsonable
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
_NUMBERS = (int, float, Decimal, Ratio, Seconds)


def _cell(value: Any) -> str:
    """A value for CSV: what JSON carries, without JSON's quotes around strings."""
    if value is None:
        return ""
    jsonable = to_jsonable(value)
    return jsonable if isinstance(jsonable, str) else json.dumps(jsonable)


def human_seconds(seconds: float) -> str:
    """3725 -> '1h 2m 5s'; 4.25 -> '4.2s'."""
    from meterhouse.jobs.stuck import human_seconds as shown

    return shown(seconds)


def _people(value: Any, places: int) -> str:
    """A value for the table, Decimals with ``places`` digits after the point."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:.{places}f}" if value.is_finite() else str(value)
    if isinstance(value, Ratio):
        return f"{value.value * 100:.1f}%"
    if isinstance(value, Seconds):
        return human_seconds(value.value)
    if isinstance(value, (list, tuple)):
        # 50%,80%,100%: in a list the thresholds read better without ".0".
        return ",".join(_people(v, places).replace(".0%", "%") for v in value) or "-"
    if isinstance(value, datetime):
        return to_jsonable(value).replace("+00:00", "Z")  # type: ignore[no-any-return]
    return _cell(value)


def _places(values: Sequence[Any]) -> int:
    """The most digits after the point any Decimal of the column needs (trailing zeros cut)."""
    needed = [
        max(-v.normalize().as_tuple().exponent, 0)  # type: ignore[operator]
        for v in values
        if isinstance(v, Decimal) and v.is_finite()
    ]
    return max(needed, default=0)


_NUMBER_TEXT = re.compile(r"^[-+]?\$?[\d,]*\.?\d+(?:%|[eE][-+]?\d+)?$")
_NO_VALUE = ("", "-", "n/a")


def _numeric(values: Sequence[Any]) -> bool:
    """A column of numbers (or numbers some module already made text): right-aligned."""
    seen = False
    for value in values:
        if value is None or (isinstance(value, str) and value in _NO_VALUE):
            continue
        if isinstance(value, bool) or not (
            isinstance(value, _NUMBERS) or (isinstance(value, str) and _NUMBER_TEXT.match(value))
        ):
            return False
        seen = True
    return seen


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
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    places = [_places(values) for values in by_column]
    numeric = [_numeric(values) for values in by_column]
    cells = [[_people(v, places[i]) for i, v in enumerate(row)] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line(columns), rule, *(line(row) for row in cells), footer])


def render_result(result: QueryResult, fmt: str) -> str:
    rows: Sequence[Sequence[Any]] = result.rows
    decimals = [i for i, kind in enumerate(result.column_types) if "Decimal" in kind]
    if decimals and fmt == "table":
        # Through `meterhouse run` Decimals arrive as exact strings; the table aligns numbers.
        rows = [
            [Decimal(v) if i in decimals and isinstance(v, str) else v for i, v in enumerate(row)]
            for row in rows
        ]
    return render_rows(result.column_names, rows, fmt)


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


def echo_outcome(fmt: str, sentence: str, record: dict[str, Any]) -> None:
    """What a command did: a sentence for people, the same facts as one record for programs."""
    click.echo(sentence if fmt == "table" else render_dicts([record], fmt))
