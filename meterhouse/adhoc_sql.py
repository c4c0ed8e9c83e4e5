"""Ad-hoc SQL as users run it: read-only unless asked, bounded in rows and time.

Used by ``meterhouse sql`` on a store it opens itself and by the service's /api/v1/sql,
which the CLI asks when ``meterhouse run`` holds the embedded store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meterhouse.errors import MeterhouseError
from meterhouse.store.base import QueryResult, Store

_READ_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_WRAPPABLE = ("SELECT", "WITH")
_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.I)


class AdhocSqlError(MeterhouseError):
    """The statement is not allowed as asked (e.g. a write without --write)."""


@dataclass(frozen=True)
class AdhocLimits:
    max_rows: int = 100_000
    max_seconds: int = 30


def first_keyword(store: Store, sql: str) -> str:
    """The statement's leading keyword, after ClickHouse's own parser has normalised it."""
    formatted = store.query("SELECT formatQuerySingleLine({q:String})", {"q": sql}).scalar()
    return str(formatted).lstrip("( ").split(None, 1)[0].upper() if formatted else ""


def run_adhoc(store: Store, sql: str, *, write: bool = False, limits: AdhocLimits) -> QueryResult:
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise AdhocSqlError("no SQL given")
    if _FORMAT.search(sql):
        raise AdhocSqlError(
            "leave out the FORMAT clause: choose the output with --format table|csv|json"
        )
    keyword = first_keyword(store, sql)
    if keyword in _WRAPPABLE:
        # A subquery carries the limits without touching the user's own SETTINGS clause.
        return store.query(
            f"SELECT * FROM ({sql}) LIMIT {int(limits.max_rows)}",
            settings={"readonly": 0 if write else 2, "max_execution_time": limits.max_seconds},
        )
    if keyword in _READ_KEYWORDS:
        return store.query(sql)
    if not write:
        raise AdhocSqlError(
            f"{keyword} changes data; `meterhouse sql` is read-only unless you pass --write"
        )
    return store.query(sql)
