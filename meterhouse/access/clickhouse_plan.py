"""ClickHouse users, roles, grants and row policies that mirror the role bindings.

One ClickHouse role per distinct (account, role, scope, scope id) of the bindings, shared by
the users bound alike, and one ClickHouse user per user with bindings:

    user     mh/<account>/<user>                         e.g. mh/acme/alice
    role     mh/<account>/<role>/account                 e.g. mh/acme/billing/account
             mh/<account>/<role>/<team|project>/<id>     e.g. mh/acme/viewer/team/data
    policy   the role's name, ON <database>.<table>, FOR SELECT, TO that role
    profile  mh/tenant: constraints that no query can lift: readonly = 1, allow_ddl = 0
             (no table functions: file, url, remote ...), no introspection functions,
             max_execution_time <= MH_SQL_MAX_SECONDS (changeable in readonly, as
             Grafana's ClickHouse plugin needs, but never above), max_result_rows =
             MH_SQL_MAX_ROWS with result_overflow_mode = 'throw'

Ids are percent-encoded (``:`` -> ``%3A``; ``/`` never occurs in an id), so names are
unique per binding and usable as HTTP user names.

A role gets SELECT on a table only when all of these hold: the table has an account_id
column; roles.TABLE_ACTIONS names the read action its rows belong to and the binding's role
is allowed that action; an account-wide action needs an account-scoped binding; a team
binding needs a team_id column and a project binding a project_id column. With every grant
comes a row policy of the same role on the same table:

    account scope   account_id = '<account>'
    team scope      account_id = '<account>' AND team_id = '<team>'
    project scope   account_id = '<account>' AND project_id = '<project>'

Row policies are permissive, so a user's roles add up (team data + project p = both), and
a role never holds a grant without its policy on that table. Statements are ordered so no
step ever widens access: policies before grants; revocations before the policies they
relied on are dropped.

This module is pure: it turns (tables, bindings, what exists) into statements.
clickhouse_sync.py discovers, checks and applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from meterhouse.access.roles import PRIVATE_TABLES, READ_ACTIONS, TABLE_ACTIONS
from meterhouse.access.users import Binding

PREFIX: Final = "mh/"
PROFILE: Final = "mh/tenant"
HIDDEN_HASH: Final = "<sha256 of the generated password>"


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _enc(value: str) -> str:
    return quote(value, safe="")


def user_name(account_id: str, user_id: str) -> str:
    return f"{PREFIX}{_enc(account_id)}/{_enc(user_id)}"


def role_name(binding: Binding) -> str:
    base = f"{PREFIX}{_enc(binding.account_id)}/{binding.role}/{binding.scope}"
    return base if binding.scope == "account" else f"{base}/{_enc(binding.scope_id)}"


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: frozenset[str]


@dataclass(frozen=True)
class Existing:
    """Managed (mh/…) objects found on the server; ``known`` False when they could not be
    read (the embedded engine, or a user without SHOW privileges): then everything is
    created as if new, with IF NOT EXISTS / OR REPLACE."""

    known: bool = False
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    role_grants: frozenset[tuple[str, str]] = frozenset()  # (user, role)
    policies: frozenset[tuple[str, str]] = frozenset()  # (policy name, table)
    grants: frozenset[tuple[str, str]] = frozenset()  # (role, table)


@dataclass(frozen=True)
class Statement:
    kind: str  # profile | role | policy | grant | user | drop | revoke
    sql: str  # what runs
    shown: str  # what is printed and audited: password hashes hidden
    password_of: str = ""  # the user whose new password this statement sets


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_seconds: int


@dataclass
class Plan:
    database: str
    statements: list[Statement] = field(default_factory=list)
    tables_without_account: list[str] = field(default_factory=list)  # never granted
    unclassified_tables: list[str] = field(default_factory=list)  # account_id, no rule: private
    policies: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, table) -> USING
    users: dict[str, list[str]] = field(default_factory=dict)  # user -> its roles
    new_users: list[str] = field(default_factory=list)  # need a password

    def add(self, kind: str, sql: str, shown: str | None = None, password_of: str = "") -> None:
        self.statements.append(Statement(kind, sql, shown or sql, password_of))


def policy_condition(binding: Binding, table: TableInfo) -> str | None:
    """The row policy's USING expression for this binding on this table; None: no access."""
    action = TABLE_ACTIONS.get(table.name)
    if action is None or "account_id" not in table.columns:
        return None
    rule = READ_ACTIONS[action]
    if binding.role not in rule.roles or (rule.account_wide and binding.scope != "account"):
        return None
    account = f"account_id = {quote_string(binding.account_id)}"
    if binding.scope == "account":
        return account
    column = "team_id" if binding.scope == "team" else "project_id"
    if column not in table.columns:
        return None
    return f"{account} AND {column} = {quote_string(binding.scope_id)}"


def classify(tables: Iterable[TableInfo], plan: Plan) -> list[TableInfo]:
    """Tables that may be granted; the others are listed in the plan."""
    grantable = []
    for table in sorted(tables, key=lambda t: t.name):
        if "account_id" not in table.columns:
            plan.tables_without_account.append(table.name)
        elif table.name in PRIVATE_TABLES:
            continue
        elif table.name not in TABLE_ACTIONS:
            plan.unclassified_tables.append(table.name)
        else:
            grantable.append(table)
    return grantable


def build_plan(
    database: str,
    tables: Iterable[TableInfo],
    bindings: Iterable[Binding],
    existing: Existing,
    limits: Limits,
    *,
    password_hash: Callable[[str], str],
    reset_passwords: frozenset[str] = frozenset(),
) -> Plan:
    """The statements that make the server's mh/ objects match ``bindings``.

    ``password_hash(user)`` gives the sha256 hex of a new user's password;
    ``reset_passwords`` names existing users (mh/… names) that get a new one.
    """
    plan = Plan(database)
    grantable = classify(tables, plan)
    db = quote_ident(database)
    wanted_grants: dict[tuple[str, str], str] = {}
    for binding in sorted(set(bindings)):
        role = role_name(binding)
        for info in grantable:
            condition = policy_condition(binding, info)
            if condition is not None:
                wanted_grants[(role, info.name)] = condition
        plan.users.setdefault(user_name(binding.account_id, binding.user_id), []).append(role)
    plan.policies = dict(wanted_grants)
    wanted_roles = {role for roles in plan.users.values() for role in roles}

    plan.add(
        "profile",
        f"CREATE SETTINGS PROFILE OR REPLACE {quote_ident(PROFILE)} SETTINGS readonly = 1 CONST, "
        "allow_ddl = 0 CONST, allow_introspection_functions = 0 CONST, "
        f"max_execution_time = {int(limits.max_seconds)} MAX {int(limits.max_seconds)} "
        f"CHANGEABLE_IN_READONLY, max_result_rows = {int(limits.max_rows)} CONST, "
        "result_overflow_mode = 'throw' CONST",
    )
    for role in sorted(wanted_roles - existing.roles):
        plan.add("role", f"CREATE ROLE IF NOT EXISTS {quote_ident(role)}")
    for (role, table), condition in sorted(wanted_grants.items()):
        if not existing.known or (role, table) not in existing.policies:
            plan.add(
                "policy",
                f"CREATE ROW POLICY OR REPLACE {quote_ident(role)} ON {db}.{quote_ident(table)} "
                f"AS PERMISSIVE FOR SELECT USING {condition} TO {quote_ident(role)}",
            )
    for role, table in sorted(existing.grants - wanted_grants.keys()):
        if role in wanted_roles:  # roles that go are dropped whole below
            plan.add(
                "revoke", f"REVOKE SELECT ON {db}.{quote_ident(table)} FROM {quote_ident(role)}"
            )
    for role, table in sorted(wanted_grants.keys() - existing.grants):
        plan.add("grant", f"GRANT SELECT ON {db}.{quote_ident(table)} TO {quote_ident(role)}")
    _users(plan, existing, password_hash, reset_passwords)
    for user in sorted(existing.users - plan.users.keys()):
        plan.add("drop", f"DROP USER IF EXISTS {quote_ident(user)}")
    for role in sorted(existing.roles - wanted_roles):
        plan.add("drop", f"DROP ROLE IF EXISTS {quote_ident(role)}")
    for name, table in sorted(existing.policies - wanted_grants.keys()):
        plan.add(
            "drop", f"DROP ROW POLICY IF EXISTS {quote_ident(name)} ON {db}.{quote_ident(table)}"
        )
    return plan


def _users(
    plan: Plan,
    existing: Existing,
    password_hash: Callable[[str], str],
    reset_passwords: frozenset[str],
) -> None:
    profile = quote_ident(PROFILE)
    for user, roles in sorted(plan.users.items()):
        name = quote_ident(user)
        is_new = user not in existing.users
        if is_new or user in reset_passwords:
            plan.new_users.append(user)
            digest = password_hash(user)
            verb = f"CREATE USER IF NOT EXISTS {name}" if is_new else f"ALTER USER {name}"
            tail = f" SETTINGS PROFILE {profile}" if is_new else ""
            sql = f"{verb} IDENTIFIED WITH sha256_hash BY {quote_string(digest)}{tail}"
            plan.add("user", sql, sql.replace(digest, HIDDEN_HASH), password_of=user)
        held = {role for (member, role) in existing.role_grants if member == user}
        for role in sorted(held - set(roles)):
            plan.add("revoke", f"REVOKE {quote_ident(role)} FROM {name}")
        missing = sorted(set(roles) - held)
        if missing:
            plan.add("grant", f"GRANT {', '.join(map(quote_ident, missing))} TO {name}")
        if missing or is_new or held - set(roles):
            plan.add("user", f"ALTER USER {name} DEFAULT ROLE ALL")
