"""A statement as one self-contained HTML page a finance person can file or print.

No script, no stylesheet or font from the network: a summary block, an inline SVG chart
of the usage per day, and the lines table. Every text that comes from data is escaped.
Chart geometry is computed with Decimal too, so no amount ever passes through a float.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from html import escape
from typing import Final

from meterhouse.ledger.amounts import ZERO, shown
from meterhouse.ledger.statement import Statement
from meterhouse.ledger.statement_render import (
    SUMMARY_HEAD,
    category_rows,
    item_rows,
    line_cells,
    line_head,
    money,
    rate_text,
    statement_lines,
    summary_rows,
)

_CHART_WIDTH: Final = Decimal(760)
_CHART_HEIGHT: Final = Decimal(220)
_LEFT: Final = Decimal(70)
_RIGHT: Final = Decimal(10)
_TOP: Final = Decimal(16)
_BOTTOM: Final = Decimal(28)
_TENTH: Final = Decimal("0.1")
_NUM: Final = ' class="num"'

_STYLE: Final = """
@page { size: A4; margin: 10mm 8mm; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       margin: 2rem auto; max-width: 1100px; font-size: 12px; }
h1 { font-size: 18px; margin: 0 0 .2rem; }
h2 { font-size: 14px; margin: 1rem 0 .3rem; }
section.top { display: flex; gap: 2rem; flex-wrap: wrap; }
table.totals td, table.totals th { padding: .15rem .6rem .15rem 0; }
table.totals th { text-align: left; border-bottom: 1px solid #1f2328; }
table.totals tr.total td { border-top: 1px solid #1f2328; font-weight: 600; }
.negative { color: #cf222e; }
.flag { font-size: 9px; font-weight: 700; border: 1px solid #cf222e; padding: 0 2px; }
figure { margin: 0; }
.muted { color: #57606a; }
.revised { border: 2px solid #cf222e; color: #cf222e; padding: .5rem .8rem; font-weight: 600;
           margin: 1rem 0; }
.note { background: #f6f8fa; padding: .5rem .8rem; margin: .8rem 0; }
table { border-collapse: collapse; }
table.summary td { padding: .2rem .8rem .2rem 0; }
table.summary tr.total td { border-top: 1px solid #1f2328; font-weight: 600; }
table.lines { width: 100%; margin-top: 1rem; }
table.lines { font-size: 10px; line-height: 1.25; }
table.lines th, table.lines td { padding: 0 .4rem; vertical-align: top; }
/* Zebra rows instead of rules: a printed month of a busy account stays a few pages. */
table.lines tbody tr:nth-child(even) td { background: #f6f8fa; }
body { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@media print { table.lines { font-size: 9px; } figure svg { height: 140px; } }
table.lines tr { break-inside: avoid; }
table.lines th { text-align: left; background: #f6f8fa; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.grant td { background: #dafbe1; }
tr.expiry td { background: #fff8c5; }
tr.edge td { font-weight: 600; background: #f6f8fa; }
footer { margin-top: 1.5rem; font-size: 11px; }
@media print { body { margin: 0; max-width: none; } }
"""


def _dec(value: Decimal) -> str:
    return str(value.quantize(_TENTH, rounding=ROUND_HALF_EVEN))


def _chart(statement: Statement) -> str:
    days = statement.daily_usage
    values = [max(credits, ZERO) for _, credits in days]
    top = max(values, default=ZERO)
    plot_w = _CHART_WIDTH - _LEFT - _RIGHT
    plot_h = _CHART_HEIGHT - _TOP - _BOTTOM
    slot = plot_w / Decimal(max(len(days), 1))
    bar = slot * Decimal("0.7")
    base = _TOP + plot_h
    label = f"Usage per day in {statement.span.label}, credits"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_WIDTH}" '
        f'height="{_CHART_HEIGHT}" viewBox="0 0 {_CHART_WIDTH} {_CHART_HEIGHT}" role="img" '
        f'aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{_LEFT}" y1="{base}" x2="{_CHART_WIDTH - _RIGHT}" y2="{base}" '
        'stroke="#57606a" stroke-width="1"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_CHART_WIDTH - _RIGHT}" y2="{_TOP}" '
        'stroke="#d0d7de" stroke-width="1" stroke-dasharray="3 3"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end" font-size="10" '
        f'fill="#57606a">{escape(shown(top, 2))}</text>',
        f'<text x="{_LEFT - 6}" y="{base + 4}" text-anchor="end" font-size="10" '
        'fill="#57606a">0</text>',
    ]
    for index, ((day, credits), value) in enumerate(zip(days, values, strict=True)):
        height = plot_h * value / top if top > 0 else ZERO
        x = _LEFT + slot * index + (slot - bar) / 2
        parts.append(
            f'<rect x="{_dec(x)}" y="{_dec(base - height)}" width="{_dec(bar)}" '
            f'height="{_dec(height)}" fill="#0969da"><title>{escape(_day_title(day, credits))}'
            "</title></rect>"
        )
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(
                f'<text x="{_dec(x + bar / 2)}" y="{base + 16}" text-anchor="middle" '
                f'font-size="10" fill="#57606a">{day.day}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _day_title(day: date, credits: Decimal) -> str:
    return f"{day.isoformat()}: {shown(credits)} credits"


def _summary(statement: Statement) -> str:
    rows = summary_rows(statement)
    body = ['<tr><th></th><th class="num">Credits</th><th class="num">USD value</th></tr>']
    for position, (label, value) in enumerate(rows):
        css = ' class="total"' if position == len(rows) - 1 else ""
        body.append(
            f"<tr{css}><td>{escape(label)}</td>{_balance_cell(value, 'balance' in label.lower())}"
            f'<td class="num">{escape(money(statement.usd_value(value), "USD"))}</td></tr>'
        )
    return f'<table class="summary" id="summary">{"".join(body)}</table>'


def _balance_cell(value: Decimal, is_balance: bool = True) -> str:
    """A balance, red and marked OVERDRAWN when the account owes credits."""
    if is_balance and value < 0:
        return (
            f'<td class="num negative">{escape(shown(value, 2))} '
            '<span class="flag">OVERDRAWN</span></td>'
        )
    return f'<td class="num">{escape(shown(value, 2))}</td>'


def _cell(text: str, numeric: bool = False) -> str:
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{escape(text)}</td>"


def _heading(name: str) -> str:
    """'USD value' keeps its capitals; 'unit price (credits)' -> 'Unit price (credits)'."""
    return name[:1].upper() + name[1:]


def _totals_table(table_id: str, rows: list[list[str]]) -> str:
    head = "".join(
        f"<th{_NUM if i >= 2 else ''}>{escape(_heading(name))}</th>"
        for i, name in enumerate(SUMMARY_HEAD)
    )
    body = []
    for position, row in enumerate(rows):
        css = ' class="total"' if position == len(rows) - 1 else ""
        body.append(f"<tr{css}>" + "".join(_cell(c, i >= 2) for i, c in enumerate(row)) + "</tr>")
    return (
        f'<table class="totals" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _lines(statement: Statement, detail: bool) -> str:
    head = line_head(detail)
    first_number = 2
    header = "".join(
        f"<th{_NUM if i >= first_number and name != 'unit' else ''}>{escape(_heading(name))}</th>"
        for i, name in enumerate(head)
    )
    blank = len(head) - 3
    rows = [
        '<tr class="edge">'
        + _cell(statement.span.month.isoformat())
        + _cell("Opening balance")
        + _cell("") * blank
        + _balance_cell(statement.opening_balance)
        + "</tr>"
    ]
    for line in statement_lines(statement, detail):
        cells = line_cells(statement, line, detail)
        rows.append(
            f'<tr class="{escape(line.type)}">'
            + "".join(
                _cell(c, i >= first_number and head[i] != "unit") for i, c in enumerate(cells[:-1])
            )
            + _balance_cell(line.balance)
            + "</tr>"
        )
    totals = [""] * blank
    credit_at = head.index("credit") - 2
    totals[credit_at] = shown(statement.credit_total, 2)
    totals[credit_at + 1] = shown(statement.debit_total, 2)
    rows.append(
        '<tr class="edge">'
        + _cell("")
        + _cell("Totals and closing balance")
        + "".join(_cell(c, True) for c in totals)
        + _balance_cell(statement.closing_balance)
        + "</tr>"
    )
    return (
        f'<table class="lines" id="lines"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(statement: Statement, detail: bool = False) -> str:
    title = f"Usage statement {statement.span.label} · {statement.account_name}"
    in_progress = (
        "" if statement.complete else f" · in progress, as of {statement.as_of:%Y-%m-%d %H:%M} UTC"
    )
    notes: list[str] = []
    if statement.revision is not None and statement.revision.revised:
        previous = statement.revision.previous
        notes.append(
            '<div class="revised" id="revised">REVISED — this statement replaces the one issued '
            f"{escape(f'{previous.issued_at:%Y-%m-%d %H:%M}')} UTC, whose usage debits were "
            f"{escape(shown(previous.totals.debit_total))} credits and closing balance "
            f"{escape(shown(previous.totals.closing_balance))} credits.</div>"
        )
    negative = [
        name
        for name, value in (
            ("opening", statement.opening_balance),
            ("closing", statement.closing_balance),
        )
        if value < 0
    ]
    if negative:
        notes.append(
            f'<div class="revised" id="overdrawn">The {" and ".join(negative)} balance '
            f"{'is' if len(negative) == 1 else 'are'} negative (OVERDRAWN): the account had "
            "used more credits than it was granted.</div>"
        )
    if statement.scope_note:
        notes.append(f'<div class="note">{escape(statement.scope_note)}</div>')
    if statement.unpriced_events:
        notes.append(
            f'<div class="note">{statement.unpriced_events} event(s) have no price yet and '
            "carry 0 credits.</div>"
        )
    organisation = f" · {escape(statement.organisation)}" if statement.organisation else ""
    view = (
        "every usage type, with quantity, unit price (per 1M tokens for tokens) and the "
        "providers' cost"
        if detail
        else "one line per day and item (the detailed statement has every usage type)"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            "<header>",
            f"<h1>{escape(title)}</h1>",
            f'<div class="muted">{escape(statement.account_id)}{organisation} · '
            f"scope: {escape(statement.scope.label)} · time zone {escape(statement.time_zone)}"
            f"{escape(in_progress)}</div>",
            f'<div class="muted">Period {escape(f"{statement.span.start:%Y-%m-%d %H:%M}")} to '
            f"{escape(f'{statement.span.end:%Y-%m-%d %H:%M}')} UTC</div>",
            f'<div class="muted" id="rate">{escape(rate_text(statement))}</div>',
            "</header>",
            *notes,
            '<section class="top">',
            "<div><h2>Summary</h2>",
            _summary(statement),
            "</div>",
            "<div><h2>Usage by category</h2>",
            _totals_table("by-category", category_rows(statement)),
            "</div>",
            "</section>",
            "<section>",
            "<h2>Usage by model or job kind</h2>",
            _totals_table("by-item", item_rows(statement)),
            "</section>",
            "<section>",
            "<h2>Usage per day</h2>",
            f"<figure>{_chart(statement)}</figure>",
            "</section>",
            "<section>",
            f"<h2>Lines: {escape(view)}</h2>",
            _lines(statement, detail),
            "</section>",
            '<footer class="muted">',
            "<p>Amounts in credits with 2 decimals unless marked $; totals are computed from "
            "exact values (csv and json carry every digit and per-unit prices). USD value is "
            "the credits at the account's rate; provider cost is what the LLM providers "
            f"charge for the model calls. Days are calendar days in {escape(statement.time_zone)}."
            " Grants burn in order of priority, then earliest expiry, then oldest; an expired "
            "grant's unused remainder leaves the balance at its expiry.</p>",
            f"<p>Generated {escape(f'{statement.generated_at:%Y-%m-%d %H:%M:%S}')} UTC · "
            f"content sha256 {escape(statement.content_hash)}</p>",
            "</footer>",
            "</body>",
            "</html>",
        ]
    )
