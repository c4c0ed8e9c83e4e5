"""A statement as text for people (table), or csv and json for programs.

csv and json carry every digit; the table rounds amounts to 4 decimal places for reading
(totals are computed from the exact values, so a column of rounded lines can differ from
its rounded total in the last place, as on any bank statement).
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Final

from meterhouse.ledger.amounts import plain, shown
from meterhouse.ledger.statement import Statement, StatementLine

FORMATS: Final = ("table", "csv", "json", "html")
CSV_COLUMNS: Final = (
    "date",
    "time",
    "type",
    "description",
    "kind",
    "item",
    "usage_type",
    "quantity",
    "unit",
    "unit_price_credits",
    "credit",
    "debit",
    "usd",
    "events",
    "balance",
    "reference",
)


def _opt(value: Decimal | None) -> str:
    return plain(value) if value is not None else ""


def unit_price_text(line: StatementLine) -> str:
    """The stored unit price when the group has one; else the average, marked as such."""
    if line.unit_price_credits is not None:
        return plain(line.unit_price_credits)
    average = line.average_unit_price
    if line.unit_price_varies and average is not None:
        return f"~{average:.6g} (varies)"
    return ""


def headline(statement: Statement) -> list[str]:
    """The lines above the table: who, which month, and whether it was revised."""
    state = (
        "" if statement.complete else f" (in progress, as of {statement.as_of:%Y-%m-%d %H:%M} UTC)"
    )
    out = [
        f"Usage statement {statement.span.label}{state}",
        f"Account: {statement.account_name} ({statement.account_id})"
        + (f", {statement.organisation}" if statement.organisation else ""),
        f"Time zone: {statement.time_zone}; period {statement.span.start:%Y-%m-%d %H:%M} to "
        f"{statement.span.end:%Y-%m-%d %H:%M} UTC",
        f"Scope: {statement.scope.label}",
    ]
    if statement.scope_note:
        out.append(statement.scope_note)
    if statement.revision is not None and statement.revision.revised:
        previous = statement.revision.previous
        out.append(
            f"REVISED: issued {previous.issued_at:%Y-%m-%d %H:%M} UTC with usage debits "
            f"{shown(previous.totals.debit_total)} and closing balance "
            f"{shown(previous.totals.closing_balance)}; now {shown(statement.usage_total)} and "
            f"{shown(statement.closing_balance)}"
        )
    if statement.unpriced_events:
        out.append(
            f"{statement.unpriced_events} event(s) have no price yet and carry 0 credits "
            "(see usage_events.unpriced_reason)"
        )
    return out


def summary_rows(statement: Statement) -> list[tuple[str, Decimal]]:
    rows = [
        ("Opening balance", statement.opening_balance),
        ("+ Credits (grants, top-ups)", statement.credit_total),
        (f"- Usage ({statement.scope.label})", statement.usage_total),
    ]
    if not statement.scope.whole_account:
        rows.append(("- Usage elsewhere in the account", statement.other_usage_total))
    rows += [
        ("- Expired credits", statement.expired_total),
        ("= Closing balance", statement.closing_balance),
    ]
    return rows


def render_table(statement: Statement) -> str:
    head = [
        "date",
        "description",
        "quantity",
        "unit",
        "unit price",
        "credit",
        "debit",
        "USD",
        "balance",
    ]
    rows = [
        [
            statement.span.month.isoformat(),
            "Opening balance",
            "",
            "",
            "",
            "",
            "",
            "",
            shown(statement.opening_balance),
        ]
    ]
    for line in statement.lines:
        rows.append(
            [
                line.local_date.isoformat(),
                line.description,
                shown(line.quantity, 0) if line.quantity is not None else "",
                line.unit,
                unit_price_text(line),
                shown(line.credit) if line.credit else "",
                shown(line.debit) if line.type != "grant" else "",
                shown(line.usd) if line.usd is not None else "",
                shown(line.balance),
            ]
        )
    rows.append(["", "Closing balance", "", "", "", "", "", "", shown(statement.closing_balance)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    numeric = {2, 4, 5, 6, 7, 8}

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    table = [fmt(head), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]
    label_width = max(len(label) for label, _ in summary_rows(statement))
    summary = [
        f"{label.ljust(label_width)}  {shown(value):>20}"
        for label, value in summary_rows(statement)
    ]
    summary.append(f"{'USD value of usage'.ljust(label_width)}  {shown(statement.usd_total):>20}")
    footer = "Amounts in credits, rounded to 4 places; csv and json carry exact values."
    return "\n".join([*headline(statement), "", *summary, "", *table, "", footer])


def render_csv(statement: Statement) -> str:
    """One row per line, between an opening and a closing row: credit - debit sums up."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerow(
        {
            "date": statement.span.month.isoformat(),
            "time": statement.span.start.isoformat(),
            "type": "opening",
            "description": "Opening balance",
            "balance": plain(statement.opening_balance),
        }
    )
    for line in statement.lines:
        writer.writerow(
            {
                "date": line.local_date.isoformat(),
                "time": line.at.isoformat() if line.at else "",
                "type": line.type,
                "description": line.description,
                "kind": line.kind,
                "item": line.item,
                "usage_type": line.usage_type,
                "quantity": _opt(line.quantity),
                "unit": line.unit,
                "unit_price_credits": _opt(line.unit_price_credits),
                "credit": plain(line.credit),
                "debit": plain(line.debit),
                "usd": _opt(line.usd),
                "events": line.events,
                "balance": plain(line.balance),
                "reference": line.reference,
            }
        )
    last_day = statement.as_of.astimezone(statement.span.zone).date()
    if statement.complete:
        last_day = statement.span.days()[-1]
    writer.writerow(
        {
            "date": last_day.isoformat(),
            "time": statement.as_of.isoformat(),
            "type": "closing",
            "description": "Closing balance",
            "balance": plain(statement.closing_balance),
        }
    )
    return buffer.getvalue().rstrip("\n")


def render_json(statement: Statement) -> str:
    return json.dumps(statement.to_dict(), indent=2)


def render(statement: Statement, fmt: str) -> str:
    if fmt == "table":
        return render_table(statement)
    if fmt == "csv":
        return render_csv(statement)
    if fmt == "json":
        return render_json(statement)
    if fmt == "html":
        from meterhouse.ledger.statement_html import render_html

        return render_html(statement)
    raise ValueError(f"unknown statement format {fmt!r}; formats: {', '.join(FORMATS)}")
