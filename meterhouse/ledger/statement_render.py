"""A statement as text for people (table), or csv and json for programs.

csv and json carry every digit and per-unit prices; the table reads like a bank or card
statement: a summary with the dollar value of credits at the account's rate, usage by
category and by model or job kind with totals, then one line per day and item (--detail:
every usage type, token prices per 1M tokens, the providers' cost). Amounts show 2
decimals; totals are computed from the exact values, so a column of rounded lines can
differ from its rounded total in the last place, as on any bank statement.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Final

from meterhouse.ledger.amounts import exact_sum, plain, shown
from meterhouse.ledger.statement import Statement, StatementLine
from meterhouse.ledger.statement_summary import (
    UsageTotal,
    by_category,
    by_item,
    compact_lines,
    per_million,
)

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
    "usd_value",
    "provider_cost_usd",
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


def money(value: Decimal | None, currency: str = "credits") -> str:
    """2 decimals with the currency: '1,234.57 credits', '$11.22', '-$0.34'."""
    if value is None:
        return ""
    if currency == "USD":
        text = shown(abs(value), 2)
        return f"-${text}" if value < 0 else f"${text}"
    return f"{shown(value, 2)} {currency}"


def balance_text(value: Decimal) -> str:
    """A balance, marked when the account owes credits (as a bank marks an overdraft)."""
    return f"{shown(value, 2)} OVERDRAWN" if value < 0 else shown(value, 2)


def rate_text(statement: Statement) -> str:
    if statement.rate is None:
        return "Rate: the account's plan has no credits-per-USD rate; no dollar values shown"
    rate = statement.rate
    return (
        f"Rate: {plain(rate.credits_per_usd)} credits = $1.00 (plan {rate.plan}, price book "
        f"{rate.price_book_version}); USD value = credits at this rate. Provider cost is what "
        "the LLM providers charge for the model calls."
    )


def category_rows(statement: Statement) -> list[list[str]]:
    """Usage by category, then by model or job kind, each with a total row."""
    rows = []
    categories = by_category(statement)
    for total in categories:
        rows.append(_total_row(statement, total.label, "", total))
    rows.append(
        [
            "Total",
            "",
            f"{sum(t.events for t in categories):,}",
            shown(statement.usage_total, 2),
            money(statement.usd_value(statement.usage_total), "USD"),
            money(_provider_cost(categories), "USD"),
        ]
    )
    return rows


def item_rows(statement: Statement) -> list[list[str]]:
    rows = [_total_row(statement, t.label, t.item, t) for t in by_item(statement)]
    totals = by_category(statement)
    rows.append(
        [
            "Total",
            "",
            f"{sum(t.events for t in totals):,}",
            shown(statement.usage_total, 2),
            money(statement.usd_value(statement.usage_total), "USD"),
            money(_provider_cost(totals), "USD"),
        ]
    )
    return rows


def _provider_cost(totals: list[UsageTotal]) -> Decimal | None:
    kept = [t.provider_cost_usd for t in totals if t.provider_cost_usd is not None]
    return exact_sum(kept) if kept else None


def _total_row(statement: Statement, label: str, item: str, total: UsageTotal) -> list[str]:
    return [
        label,
        item,
        f"{total.events:,}",
        shown(total.credits, 2),
        money(statement.usd_value(total.credits), "USD"),
        money(total.provider_cost_usd, "USD"),
    ]


SUMMARY_HEAD: Final = ("category", "item", "events", "credits", "USD value", "provider cost")


def statement_lines(statement: Statement, detail: bool) -> list[StatementLine]:
    return list(statement.lines) if detail else compact_lines(statement)


def line_cells(statement: Statement, line: StatementLine, detail: bool) -> list[str]:
    """One line for people: 2 decimals, token prices per 1M tokens, USD at the rate."""
    amount = line.credit if line.type == "grant" else line.debit
    cells = [line.local_date.isoformat(), line.description]
    if detail:
        price, per = per_million(line.unit, line.unit_price_credits)
        cells += [
            shown(line.quantity, 0) if line.quantity is not None else "",
            line.unit,
            f"{shown(price, 4)} / {per}" if price is not None else unit_price_text(line),
        ]
    cells += [
        shown(line.credit, 2) if line.type == "grant" else "",
        shown(line.debit, 2) if line.type != "grant" else "",
        money(statement.usd_value(amount), "USD"),
    ]
    if detail:
        cells.append(money(line.usd, "USD") if line.kind == "model" else "")
    cells.append(balance_text(line.balance))
    return cells


def line_head(detail: bool) -> list[str]:
    head = ["date", "description"]
    if detail:
        head += ["quantity", "unit", "unit price (credits)"]
    head += ["credit", "debit", "USD value"]
    if detail:
        head.append("provider cost")
    return [*head, "balance"]


def _table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Columns from ``left`` on are numbers: right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i >= left else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [fmt(head), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]


def render_table(statement: Statement, detail: bool = False) -> str:
    summary = [
        [label, shown(value, 2), money(statement.usd_value(value), "USD")]
        for label, value in summary_rows(statement)
    ]
    for row, (label, value) in zip(summary, summary_rows(statement), strict=True):
        if "balance" in label.lower() and value < 0:
            row.append("OVERDRAWN")
    width = max(len(r) for r in summary)
    summary = [r + [""] * (width - len(r)) for r in summary]
    lines = statement_lines(statement, detail)
    edge = len(line_head(detail)) - 3
    body = [
        [statement.span.month.isoformat(), "Opening balance", *[""] * edge,
         balance_text(statement.opening_balance)],
        *(line_cells(statement, line, detail) for line in lines),
    ]  # fmt: skip
    totals = ["", "Totals and closing balance", *[""] * edge,
              balance_text(statement.closing_balance)]  # fmt: skip
    first = 5 if detail else 2
    totals[first] = shown(statement.credit_total, 2)
    totals[first + 1] = shown(statement.debit_total, 2)
    body.append(totals)
    view = (
        "every line (--detail)"
        if detail
        else "one line per day and item; --detail shows each usage type with quantity and price"
    )
    out = [
        *headline(statement),
        rate_text(statement),
        "",
        *_table(["", "credits", "USD value", ""][:width], summary, 1),
        "",
        "Usage by category",
        *_table(list(SUMMARY_HEAD), category_rows(statement), 2),
        "",
        "Usage by model or job kind",
        *_table(list(SUMMARY_HEAD), item_rows(statement), 2),
        "",
        f"Lines: {view}",
        *_table(line_head(detail), body, 2),
        "",
        "Amounts in credits with 2 decimals unless marked $; csv and json carry exact values "
        "and per-unit prices.",
    ]
    return "\n".join(out)


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
                "usd_value": _opt(
                    statement.usd_value(line.credit if line.type == "grant" else line.debit)
                ),
                "provider_cost_usd": _opt(line.usd) if line.kind == "model" else "",
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
