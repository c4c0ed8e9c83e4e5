"""A statement in the format asked for: the one entry point of the API and the CLI.

Its own module so that statement_html.py, which builds on statement_render.py's rows, is
not imported back by it (no cycle).
"""

from __future__ import annotations

from typing import Final

from meterhouse.ledger.statement import Statement
from meterhouse.ledger.statement_html import render_html
from meterhouse.ledger.statement_render import render_csv, render_json, render_table

FORMATS: Final = ("table", "csv", "json", "html")


def render(statement: Statement, fmt: str, *, detail: bool = False) -> str:
    """``detail``: every usage type in the table and HTML (csv and json always have them)."""
    if fmt == "table":
        return render_table(statement, detail)
    if fmt == "csv":
        return render_csv(statement)
    if fmt == "json":
        return render_json(statement)
    if fmt == "html":
        return render_html(statement, detail)
    raise ValueError(f"unknown statement format {fmt!r}; formats: {', '.join(FORMATS)}")
