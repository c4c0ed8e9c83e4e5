"""Ad-hoc SQL as users run it: read-only unless asked, bounded in rows and time, and
confined to meterhouse's own database.

Used by ``meterhouse sql`` on a store it opens itself and by the service's /api/v1/sql,
which the CLI asks when ``meterhouse run`` holds the embedded store.

Before a statement runs, ClickHouse's own parser (``EXPLAIN AST``) shows what it touches,
and it is refused when it

* names a table function other than the generators in SAFE_TABLE_FUNCTIONS (``file``,
  ``url``, ``remote``, ``s3``, ``executable``, ``mysql`` ... read or write outside the
  database; ``INSERT INTO FUNCTION`` is the same), or a function that reads files;
* has a SETTINGS clause anywhere that changes anything but how results look (an inner
  one would lift the time or row limit; SAFE_SETTINGS are allowed);
* names a table of another database (the engine's read-only ``system`` tables aside);
* with ``write``, is anything but INSERT, ALTER, DELETE, UPDATE, OPTIMIZE or TRUNCATE
  (no CREATE, DROP, SYSTEM, SET, GRANT ...).

The embedded engine runs one query at a time, so the time limit also bounds how long an
ad-hoc query can hold other requests. On a ClickHouse server, tenants' own users carry the
same limits as constraints of their settings profile (meterhouse/access/clickhouse_plan.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.settings import Settings
from meterhouse.store.base import QueryResult, Store

_READ_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_WRITE_KEYWORDS = ("INSERT", "ALTER", "DELETE", "UPDATE", "OPTIMIZE", "TRUNCATE")
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generaterandom",
        "generate_series",
        "generateseries",
        "values",
        "null",
        "view",
    }
)
# Settings that change how a result looks, never what a query may spend (CLI commands
# send join_use_nulls through the service's SQL endpoint).
SAFE_SETTINGS = frozenset(
    {"join_use_nulls", "aggregate_functions_null_for_empty", "cast_keep_nullable"}
)
_FILE_FUNCTIONS = frozenset({"file"})  # scalar functions that read host files
# Where a function node of EXPLAIN AST is a table function (or a table engine).
_TABLE_PLACES = ("TableExpression", "InsertQuery", "Storage definition")
_WRAPPABLE = ("SELECT", "WITH")
_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.I)


class AdhocSqlError(MeterhouseError):
    """The statement is not allowed as asked (e.g. a write without --write)."""


@dataclass(frozen=True)
class AdhocLimits:
    max_rows: int = 100_000
    max_seconds: int = 30
    # The embedded engine of a running service runs one statement at a time: a query there
    # holds every other request, so it gets MH_SQL_SHARED_MAX_SECONDS and says so when cut.
    shared: bool = False

    @classmethod
    def of(cls, settings: Settings, *, shared: bool) -> AdhocLimits:
        seconds = settings.sql_max_seconds
        if shared:
            seconds = min(seconds, settings.sql_shared_max_seconds)
        return cls(settings.sql_max_rows, seconds, shared)


_SHARED_TIMEOUT = (
    "the query ran longer than {} s, the limit of ad-hoc SQL on the embedded engine while "
    "`meterhouse run` serves requests (MH_SQL_SHARED_MAX_SECONDS): that engine runs one "
    "statement at a time, so a longer query would hold every other request. Narrow the "
    "query, or stop the service and run it with `meterhouse sql` (MH_SQL_MAX_SECONDS "
    "applies), or use a ClickHouse server"
)


def first_keyword(store: Store, sql: str) -> str:
    """The statement's leading keyword, after ClickHouse's own parser has normalised it."""
    formatted = store.query("SELECT formatQuerySingleLine({q:String})", {"q": sql}).scalar()
    return str(formatted).lstrip("( ").split(None, 1)[0].upper() if formatted else ""


def _outside_functions(store: Store) -> frozenset[str]:
    """Table functions that are no regular function too (``file`` is both: a scalar that
    reads a file): wherever they appear, they read or write outside the database."""
    names = store.query(
        "SELECT lower(name) FROM system.table_functions "
        "WHERE name NOT IN (SELECT name FROM system.functions)"
    ).rows
    return frozenset(str(row[0]) for row in names) - SAFE_TABLE_FUNCTIONS


def check_confined(store: Store, sql: str) -> None:
    """Refuse (AdhocSqlError) what reaches outside the database or lifts a limit."""
    outside = _outside_functions(store) | _FILE_FUNCTIONS
    lines = [str(row[0]) for row in store.query(f"EXPLAIN AST {sql}").rows]
    parents: list[tuple[int, str]] = []  # (indent, node) of the open ancestors
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        node = line.strip()
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parent = parents[-1][1] if parents else ""
        parents.append((indent, node))
        kind, _, rest = node.partition(" ")
        name = rest.split(" (", 1)[0].strip()
        if node == "Set" or kind == "Set":
            _check_settings(store, sql)
        if kind == "Function":
            table_place = parent.startswith(_TABLE_PLACES)
            if table_place and name.lower() not in SAFE_TABLE_FUNCTIONS:
                raise AdhocSqlError(
                    f"the table function or engine {name}() reaches outside meterhouse's "
                    "database (files, URLs, other servers or processes) and is not allowed; "
                    f"allowed: {', '.join(sorted(SAFE_TABLE_FUNCTIONS))}"
                )
            if not table_place and name.lower() in outside:
                raise AdhocSqlError(
                    f"the function {name}() reaches outside meterhouse's database; not allowed"
                )
        if kind == "TableIdentifier" and "." in name:
            database = name.split(".", 1)[0]
            if database not in (store.database, "system"):
                raise AdhocSqlError(
                    f"{name}: ad-hoc SQL reads only meterhouse's database {store.database!r} "
                    "(and the engine's own `system` tables)"
                )


def _check_settings(store: Store, sql: str) -> None:
    """A SETTINGS clause may only change how results look (SAFE_SETTINGS), never a limit.

    EXPLAIN AST does not name the settings, so every ``name =`` from the first SETTINGS
    keyword of the normalised text to its end counts: a comparison after it counts too,
    which can only refuse more, never let a setting through.
    """
    formatted = str(
        store.query("SELECT formatQuerySingleLine({q:String})", {"q": sql}).scalar() or ""
    )
    start = re.search(r"\bSETTINGS\b", formatted, re.I)
    names = set(re.findall(r"(\w+)\s*=", formatted[start.start() :])) if start else {"?"}
    lifted = sorted(names - SAFE_SETTINGS)
    if lifted:
        raise AdhocSqlError(
            f"SETTINGS {', '.join(lifted)} not allowed in ad-hoc SQL: its limits are the "
            f"service's (MH_SQL_MAX_SECONDS, MH_SQL_MAX_ROWS); allowed: "
            f"{', '.join(sorted(SAFE_SETTINGS))}"
        )


def run_adhoc(store: Store, sql: str, *, write: bool = False, limits: AdhocLimits) -> QueryResult:
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise AdhocSqlError("no SQL given")
    if _FORMAT.search(sql):
        raise AdhocSqlError(
            "leave out the FORMAT clause: choose the output with --format table|csv|json"
        )
    keyword = first_keyword(store, sql)
    if keyword not in _READ_KEYWORDS:
        if not write:
            raise AdhocSqlError(
                f"{keyword} changes data; `meterhouse sql` is read-only unless you pass --write"
            )
        if keyword not in _WRITE_KEYWORDS:
            raise AdhocSqlError(
                f"{keyword} is not allowed in ad-hoc SQL, even with --write (allowed: "
                f"{', '.join(_WRITE_KEYWORDS)}); schema changes go through migrations"
            )
    check_confined(store, sql)
    try:
        return _run_limited(store, sql, keyword, write, limits)
    except StoreError as exc:
        if limits.shared and exc.name == "TIMEOUT_EXCEEDED":
            raise AdhocSqlError(_SHARED_TIMEOUT.format(limits.max_seconds)) from exc
        raise


def _run_limited(
    store: Store, sql: str, keyword: str, write: bool, limits: AdhocLimits
) -> QueryResult:
    time_limit = {"max_execution_time": limits.max_seconds}
    if keyword in _WRAPPABLE:
        # The limits apply to the outer query; the user's query has no SETTINGS of its own.
        return store.query(
            f"SELECT * FROM ({sql}) LIMIT {int(limits.max_rows)}",
            settings={"readonly": 0 if write else 1, **time_limit},
        )
    return store.query(sql, settings=time_limit)
