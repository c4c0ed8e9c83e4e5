"""Rows of several tenants in every table that has an account_id column, as plain SQL.

Both the in-process policy test and the row-policy worker subprocess use these INSERTs, so
the same data meets the same policies. Every row gets an account, and a team and project
where the table has those columns; other String *_id columns get unique values so
ReplacingMergeTree keys and views keep every row apart; time columns are now,
amounts 1. Columns not
named get their defaults.
"""

from __future__ import annotations

from itertools import product
from typing import Final

TENANTS: Final = ("acme", "globex")
PLACES: Final = (("data", "churn"), ("ml", "search"), ("", ""))
SCOPE_COLUMNS: Final = ("account_id", "team_id", "project_id")
_PLAIN_STRING: Final = ("String", "LowCardinality(String)")
_NOT_INSERTED: Final = ("View", "MaterializedView")


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def insert_statements(columns: dict[str, dict[str, str]], engines: dict[str, str]) -> list[str]:
    """INSERTs for every base table with an account_id column (views fill themselves)."""
    statements = []
    for table, types in sorted(columns.items()):
        if "account_id" not in types or engines.get(table) in _NOT_INSERTED:
            continue
        ids = [
            name
            for name, kind in types.items()
            if name.endswith("_id") and name not in SCOPE_COLUMNS and kind in _PLAIN_STRING
        ]
        # Times are now: a 1970 default would be dropped at once by job_logs' TTL.
        times = [name for name, kind in types.items() if kind.startswith("DateTime")]
        # Amounts are 1: SummingMergeTree drops rows whose sums are all zero.
        amounts = [name for name, kind in types.items() if kind.startswith("Decimal")]
        amounts += ["events"] if types.get("events", "").startswith("UInt") else []
        names = [c for c in SCOPE_COLUMNS if c in types] + ids + times + amounts
        rows = []
        for index, (account, (team, project)) in enumerate(product(TENANTS, PLACES)):
            values = {"account_id": account, "team_id": team, "project_id": project}
            values.update({name: f"{table}-{index}" for name in ids})
            cells = [_literal(values[name]) for name in names if name in values]
            # now64(3) is a Decimal64 to a plain DateTime column (the rollups' hours).
            cells += [
                "now64(3)" if types[name].startswith("DateTime64") else "now()" for name in times
            ]
            cells += ["1"] * len(amounts)
            rows.append("(" + ", ".join(cells) + ")")
        statements.append(f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(rows)}")
    return statements


def allowed_places(scope: str, scope_id: str) -> set[tuple[str, str]]:
    """(team, project) of the rows a binding of this scope may see in its account."""
    if scope == "account":
        return set(PLACES)
    if scope == "team":
        return {(t, p) for t, p in PLACES if t == scope_id}
    return {(t, p) for t, p in PLACES if p == scope_id}
