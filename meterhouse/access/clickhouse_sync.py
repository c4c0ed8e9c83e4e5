"""`meterhouse users sync-clickhouse`: per-tenant ClickHouse credentials from the bindings.

Discovers the database's tables and the managed (mh/…) users, roles, grants and row
policies that exist, plans the statements that make them match the role bindings
(clickhouse_plan.py), checks every statement with the engine's own parser (SELECT
formatQuery(...)) and, unless it is a dry run, applies them in order and audits the sync.

New users get a generated password (32 random bytes, URL-safe base64). ClickHouse keeps
only its SHA-256 (IDENTIFIED WITH sha256_hash); meterhouse keeps nothing; the caller
prints it once. The embedded engine (chdb) has no user management, so applying needs a
ClickHouse server; a dry run works on both and prints the plan.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from meterhouse.access.clickhouse_plan import (
    PREFIX,
    Existing,
    Limits,
    Plan,
    Statement,
    TableInfo,
    build_plan,
)
from meterhouse.access.keys import hash_secret
from meterhouse.access.tenants import audit
from meterhouse.access.users import AccessError, all_bindings
from meterhouse.errors import StoreError
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)
_PLACEHOLDER_HASH = "0" * 64
_ACCESS_DENIED = 497


def discover_tables(store: Store) -> list[TableInfo]:
    """Tables and plain views of the store's database with their columns (materialized
    views are left out: their target tables are what people read)."""
    rows = store.query(
        "SELECT t.name AS name, groupArray(c.name) AS columns "
        "FROM system.tables AS t INNER JOIN system.columns AS c "
        "ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = currentDatabase() AND t.engine != 'MaterializedView' "
        "AND NOT startsWith(t.name, '.inner') GROUP BY t.name ORDER BY t.name"
    )
    return [TableInfo(str(name), frozenset(columns)) for name, columns in rows.rows]


def discover_existing(store: Store) -> Existing:
    """The managed objects on the server; unknown (``known`` False) when they cannot be read."""
    params = {"p": PREFIX}
    try:
        users = store.query(
            "SELECT name FROM system.users WHERE startsWith(name, {p:String})", params
        ).rows
        roles = store.query(
            "SELECT name FROM system.roles WHERE startsWith(name, {p:String})", params
        ).rows
        role_grants = store.query(
            "SELECT user_name, granted_role_name FROM system.role_grants "
            "WHERE startsWith(user_name, {p:String})",
            params,
        ).rows
        policies = store.query(
            "SELECT short_name, table FROM system.row_policies "
            "WHERE startsWith(short_name, {p:String}) AND database = currentDatabase()",
            params,
        ).rows
        grants = store.query(
            "SELECT role_name, table FROM system.grants WHERE startsWith(role_name, {p:String}) "
            "AND database = currentDatabase() AND access_type = 'SELECT' AND table IS NOT NULL",
            params,
        ).rows
    except StoreError as exc:
        if exc.code != _ACCESS_DENIED:
            raise
        log.info("managed ClickHouse objects cannot be read; planning from nothing")
        return Existing(known=False)
    return Existing(
        known=True,
        users=frozenset(str(row[0]) for row in users),
        roles=frozenset(str(row[0]) for row in roles),
        role_grants=frozenset((str(u), str(r)) for u, r in role_grants),
        policies=frozenset((str(n), str(t)) for n, t in policies),
        grants=frozenset((str(r), str(t)) for r, t in grants),
    )


def check_syntax(store: Store, statements: list[Statement]) -> list[str]:
    """Problems the engine's parser finds, one per bad statement (empty: all parse)."""
    problems = []
    for statement in statements:
        try:
            store.query("SELECT formatQuery({q:String})", {"q": statement.sql})
        except StoreError as exc:
            problems.append(f"{statement.shown}: {exc}")
    return problems


@dataclass
class SyncResult:
    plan: Plan
    applied: int = 0
    passwords: dict[str, str] = field(default_factory=dict)  # user -> password, shown once
    error: str = ""  # why applying stopped; the statements before it are applied

    @property
    def ok(self) -> bool:
        return not self.error

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for statement in self.plan.statements:
            counts[statement.kind] = counts.get(statement.kind, 0) + 1
        return {
            "database": self.plan.database,
            "statements": counts,
            "applied": self.applied,
            "error": self.error,
            "users": sorted(self.plan.users),
            "new_passwords_for": sorted(self.passwords),
            "tables_without_account": self.plan.tables_without_account,
            "unclassified_tables": self.plan.unclassified_tables,
        }


def plan_sync(
    store: Store,
    limits: Limits,
    *,
    dry_run: bool,
    reset_passwords: frozenset[str] = frozenset(),
) -> SyncResult:
    """The plan (checked by the engine's parser) and, unless a dry run, new passwords."""
    passwords: dict[str, str] = {}

    def password_hash(user: str) -> str:
        if dry_run:
            return _PLACEHOLDER_HASH
        passwords[user] = secrets.token_urlsafe(32)
        return hash_secret(passwords[user])

    existing = Existing(known=False) if _embedded(store) else discover_existing(store)
    plan = build_plan(
        store.database,
        discover_tables(store),
        all_bindings(store),
        existing,
        limits,
        password_hash=password_hash,
        reset_passwords=reset_passwords,
    )
    problems = check_syntax(store, plan.statements)
    if problems:
        raise AccessError("generated statements do not parse:\n" + "\n".join(problems))
    return SyncResult(plan, passwords=passwords)


def _embedded(store: Store) -> bool:
    return not store.capabilities.access_management


def sync_clickhouse(
    store: Store,
    limits: Limits,
    *,
    actor: str,
    dry_run: bool = False,
    reset_passwords: frozenset[str] = frozenset(),
) -> SyncResult:
    """Plan, check and (unless ``dry_run``) apply; an applied sync is audited.

    When the server refuses a statement, applying stops there and ``error`` says why;
    ``passwords`` then holds only the users whose password was set (every statement is
    idempotent, so syncing again completes the rest)."""
    if not dry_run and _embedded(store):
        raise AccessError(
            "the embedded engine (chdb) has no user management or user switching, so "
            "per-tenant ClickHouse users need a ClickHouse server (MH_CLICKHOUSE_URL="
            "http(s)://…); `--dry-run` prints the plan here"
        )
    result = plan_sync(store, limits, dry_run=dry_run, reset_passwords=reset_passwords)
    if dry_run:
        return result
    generated, result.passwords = result.passwords, {}
    for statement in result.plan.statements:
        try:
            store.command(statement.sql)
        except StoreError as exc:
            result.error = (
                f"ClickHouse refused `{statement.shown}` after {result.applied} statements: "
                f"{exc}. The meterhouse ClickHouse user needs access management "
                "(GRANT ACCESS MANAGEMENT, or access_management=1); fix it and sync again "
                "(every statement is idempotent)"
            )
            break
        result.applied += 1
        if statement.password_of:
            result.passwords[statement.password_of] = generated[statement.password_of]
    audit(
        store,
        actor=actor,
        action="clickhouse.sync",
        target_type="clickhouse",
        target_id=store.database,
        account_id="",
        before=None,
        after={**result.summary(), "shown": [s.shown for s in result.plan.statements]},
    )
    return result
