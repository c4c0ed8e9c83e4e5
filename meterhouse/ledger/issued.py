"""Issued statements: what an account was told, so a later change shows as a revision.

Each ``--issue`` appends a row to ``statements_issued`` (never updated). The latest row of
(account, month, scope) is what a re-generated statement compares itself with: when its
totals differ, because late events arrived or a grant was back-dated, it says REVISED
and shows the totals issued before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from meterhouse.ledger.months import aware
from meterhouse.store.base import Store


@dataclass(frozen=True)
class IssuedTotals:
    opening_balance: Decimal
    credit_total: Decimal
    debit_total: Decimal  # usage debits: the priced events of the month (in the scope)
    expired_total: Decimal
    closing_balance: Decimal


@dataclass(frozen=True)
class IssuedStatement:
    account_id: str
    month: date
    scope: str
    issued_at: datetime
    issued_by: str
    totals: IssuedTotals
    content_hash: str


def latest_issue(store: Store, account_id: str, month: date, scope: str) -> IssuedStatement | None:
    row = next(
        store.query(
            "SELECT issued_at, issued_by, opening_balance, credit_total, debit_total, "
            "expired_total, closing_balance, content_hash FROM statements_issued "
            "WHERE account_id = {a:String} AND month = {m:Date} AND scope = {s:String} "
            "ORDER BY issued_at DESC LIMIT 1",
            {"a": account_id, "m": month, "s": scope},
        ).dicts(),
        None,
    )
    if row is None:
        return None
    return IssuedStatement(
        account_id=account_id,
        month=month,
        scope=scope,
        issued_at=aware(row["issued_at"]),
        issued_by=row["issued_by"],
        totals=IssuedTotals(
            opening_balance=row["opening_balance"],
            credit_total=row["credit_total"],
            debit_total=row["debit_total"],
            expired_total=row["expired_total"],
            closing_balance=row["closing_balance"],
        ),
        content_hash=row["content_hash"],
    )


def record_issue(store: Store, issued: IssuedStatement) -> None:
    totals = issued.totals
    store.insert(
        "statements_issued",
        {
            "account_id": [issued.account_id],
            "month": [issued.month],
            "scope": [issued.scope],
            "issued_at": [issued.issued_at],
            "issued_by": [issued.issued_by],
            "opening_balance": [totals.opening_balance],
            "credit_total": [totals.credit_total],
            "debit_total": [totals.debit_total],
            "expired_total": [totals.expired_total],
            "closing_balance": [totals.closing_balance],
            "content_hash": [issued.content_hash],
        },
    )
