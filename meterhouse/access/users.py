"""Users of an account and their role bindings: add, remove, grant, revoke, each audited.

Rows are versioned (ReplacingMergeTree on updated_at with is_deleted); a removal or a
revocation writes a newer version with is_deleted = 1, which FINAL hides at once. Every
change writes an audit_log entry (who, what, when, before and after).

Operators change anything (the CLI's actor is ``cli:<os user>``). With ``acting_user``
a change is made on behalf of a user of the same account and the role rules of roles.py
apply: only account-wide owners and admins manage users, admins never touch owners, and
no change may leave an account without an account-wide owner once it has one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from meterhouse.access.roles import (
    MANAGE_ROLES,
    ROLES,
    SCOPES,
    may_manage_role,
    scope_allowed,
)
from meterhouse.access.tenants import (
    TenantError,
    audit,
    audited_write,
    check_id,
    get_account,
    get_project,
    get_team,
    now_utc,
)
from meterhouse.store.base import Store

_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_TICK: Final = timedelta(milliseconds=1)


class AccessError(TenantError):
    """A user, role or binding is unknown, not allowed, or the acting user may not do it."""


@dataclass(frozen=True, order=True)
class Binding:
    """One role of one user on one scope of their account (scope_id: the account, team or
    project id)."""

    account_id: str
    user_id: str
    role: str
    scope: str
    scope_id: str

    @property
    def label(self) -> str:
        where = "account" if self.scope == "account" else f"{self.scope} {self.scope_id}"
        return f"{self.role} on {where}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _version(store: Store, table: str, where: str, params: dict[str, Any]) -> datetime:
    """A version newer than every stored one of the row, even when clocks tie."""
    latest = store.query(f"SELECT max(updated_at) FROM {table} WHERE {where}", params).scalar()
    now = now_utc()
    return max(now, latest + _TICK) if isinstance(latest, datetime) else now


# -- users ---------------------------------------------------------------------------


def get_user(store: Store, account_id: str, user_id: str) -> dict[str, Any] | None:
    result = store.query(
        "SELECT account_id, user_id, email, name, created_at, updated_at FROM users FINAL "
        "WHERE account_id = {a:String} AND user_id = {u:String}",
        {"a": account_id, "u": user_id},
    )
    return next(result.dicts(), None)


def require_user(store: Store, account_id: str, user_id: str) -> dict[str, Any]:
    found = get_user(store, account_id, user_id)
    if found is None:
        raise AccessError(
            f"no user {user_id} in account {account_id}; `meterhouse users list --account "
            f"{account_id}` shows them"
        )
    return found


def list_users(store: Store, account_id: str) -> list[dict[str, Any]]:
    """Users of the account, each with its bindings as short labels."""
    users = list(
        store.query(
            "SELECT account_id, user_id, email, name, created_at FROM users FINAL "
            "WHERE account_id = {a:String} ORDER BY user_id",
            {"a": account_id},
        ).dicts()
    )
    by_user: dict[str, list[str]] = {}
    for binding in list_bindings(store, account_id):
        by_user.setdefault(binding.user_id, []).append(binding.label)
    for user in users:
        user["roles"] = ", ".join(by_user.get(user["user_id"], [])) or "(none)"
    return users


def _require_account(store: Store, account_id: str) -> None:
    if get_account(store, account_id) is None:
        raise AccessError(f"no account {account_id}; `meterhouse accounts list` shows them")


def _check_email(email: str) -> str:
    if not _EMAIL.match(email):
        raise AccessError(f"email {email!r} is not an address like alice@example.com")
    return email


def _write_user(store: Store, row: dict[str, Any]) -> None:
    store.insert("users", {key: [value] for key, value in row.items()})


def add_user(
    store: Store,
    account_id: str,
    user_id: str,
    *,
    email: str,
    name: str = "",
    actor: str,
    acting_user: str | None = None,
) -> dict[str, Any]:
    check_id("user", user_id)
    _check_email(email)
    _require_account(store, account_id)
    actor = _authorize(store, account_id, actor, acting_user, target_role=None)
    if get_user(store, account_id, user_id) is not None:
        raise AccessError(f"user {user_id} exists already in account {account_id}")
    now = now_utc()
    version = _version(
        store,
        "users",
        "account_id = {a:String} AND user_id = {u:String}",
        {"a": account_id, "u": user_id},
    )
    row = {
        "account_id": account_id,
        "user_id": user_id,
        "email": email,
        "name": name or user_id,
        "created_at": now,
        "updated_at": version,
        "is_deleted": 0,
    }
    return audited_write(
        store,
        lambda: _write_user(store, row),
        lambda: get_user(store, account_id, user_id),
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user_id,
        account_id=account_id,
        before=None,
    )


def remove_user(
    store: Store,
    account_id: str,
    user_id: str,
    *,
    actor: str,
    acting_user: str | None = None,
) -> dict[str, Any]:
    """Remove the user: revoke its bindings and its read keys, then delete it (all audited)."""
    before = require_user(store, account_id, user_id)
    bindings = list_bindings(store, account_id, user_id)
    actor_checked = _authorize(store, account_id, actor, acting_user, target_role=None)
    for binding in bindings:  # an admin may not remove an owner
        _authorize(store, account_id, actor, acting_user, binding.role)
    _keep_an_owner(store, account_id, [b for b in bindings if b.role == "owner"])
    for binding in bindings:
        _write_binding(store, binding, deleted=True)
        audit(
            store,
            actor=actor_checked,
            action="role.revoke",
            target_type="role_binding",
            target_id=f"{user_id}:{binding.role}:{binding.scope}:{binding.scope_id}",
            account_id=account_id,
            before=binding.as_dict(),
            after=None,
        )
    _revoke_user_keys(store, account_id, user_id, actor_checked)
    version = _version(
        store,
        "users",
        "account_id = {a:String} AND user_id = {u:String}",
        {"a": account_id, "u": user_id},
    )
    row = {k: before[k] for k in ("account_id", "user_id", "email", "name", "created_at")}
    _write_user(store, {**row, "updated_at": version, "is_deleted": 1})
    audit(
        store,
        actor=actor_checked,
        action="user.remove",
        target_type="user",
        target_id=user_id,
        account_id=account_id,
        before={**before, "roles": [b.label for b in bindings]},
        after=None,
    )
    return before


def _revoke_user_keys(store: Store, account_id: str, user_id: str, actor: str) -> None:
    # Imported here: keys.py checks read keys' users through this module.
    from meterhouse.access.keys import revoke_key

    found = store.query(
        "SELECT key_id FROM api_keys FINAL WHERE account_id = {a:String} AND user_id = "
        "{u:String} AND revoked_at IS NULL",
        {"a": account_id, "u": user_id},
    ).rows
    for (key_id,) in found:
        revoke_key(store, str(key_id), actor=actor)


# -- bindings ------------------------------------------------------------------------


def list_bindings(store: Store, account_id: str, user_id: str | None = None) -> list[Binding]:
    result = store.query(
        "SELECT account_id, user_id, role, scope, scope_id FROM role_bindings FINAL "
        "WHERE account_id = {a:String} AND ({u:String} = '' OR user_id = {u:String}) "
        "ORDER BY user_id, scope, scope_id, role",
        {"a": account_id, "u": user_id or ""},
    )
    return [Binding(*row) for row in result.rows]


def all_bindings(store: Store) -> list[Binding]:
    """Every binding of every user that still exists (for the ClickHouse and Grafana syncs)."""
    result = store.query(
        "SELECT b.account_id, b.user_id, b.role, b.scope, b.scope_id "
        "FROM (SELECT * FROM role_bindings FINAL) AS b "
        "INNER JOIN (SELECT account_id, user_id FROM users FINAL) AS u "
        "ON u.account_id = b.account_id AND u.user_id = b.user_id "
        "ORDER BY b.account_id, b.user_id, b.scope, b.scope_id, b.role"
    )
    return [Binding(*row) for row in result.rows]


def make_binding(
    store: Store, account_id: str, user_id: str, role: str, team: str = "", project: str = ""
) -> Binding:
    """The binding meant by CLI-style arguments, checked against the account's tenants."""
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if team and project:
        raise AccessError("bind to a team or to a project, not both (a team covers its projects)")
    scope, scope_id = (
        ("team", team) if team else ("project", project) if project else ("account", account_id)
    )
    assert scope in SCOPES
    if not scope_allowed(role, scope):
        raise AccessError(
            f"{role} is an account-wide role: bind it to the account (leave out --team and "
            "--project)"
        )
    if scope == "team" and get_team(store, account_id, scope_id) is None:
        raise AccessError(f"no team {scope_id} in account {account_id}")
    if scope == "project" and get_project(store, account_id, scope_id) is None:
        raise AccessError(f"no project {scope_id} in account {account_id}")
    return Binding(account_id, user_id, role, scope, scope_id)


def _write_binding(store: Store, binding: Binding, *, deleted: bool) -> None:
    where = (
        "account_id = {a:String} AND user_id = {u:String} AND role = {r:String} "
        "AND scope = {s:String} AND scope_id = {i:String}"
    )
    params = {
        "a": binding.account_id,
        "u": binding.user_id,
        "r": binding.role,
        "s": binding.scope,
        "i": binding.scope_id,
    }
    version = _version(store, "role_bindings", where, params)
    store.insert(
        "role_bindings",
        {
            **{key: [value] for key, value in binding.as_dict().items()},
            "updated_at": [version],
            "is_deleted": [1 if deleted else 0],
        },
    )


def grant(
    store: Store,
    binding: Binding,
    *,
    actor: str,
    acting_user: str | None = None,
) -> bool:
    """Add the binding; False (nothing written, nothing audited) when it exists already."""
    require_user(store, binding.account_id, binding.user_id)
    actor = _authorize(store, binding.account_id, actor, acting_user, binding.role)
    if binding in list_bindings(store, binding.account_id, binding.user_id):
        return False
    _write_binding(store, binding, deleted=False)
    audit(
        store,
        actor=actor,
        action="role.grant",
        target_type="role_binding",
        target_id=f"{binding.user_id}:{binding.role}:{binding.scope}:{binding.scope_id}",
        account_id=binding.account_id,
        before=None,
        after=binding.as_dict(),
    )
    return True


def revoke(
    store: Store,
    binding: Binding,
    *,
    actor: str,
    acting_user: str | None = None,
) -> None:
    actor = _authorize(store, binding.account_id, actor, acting_user, binding.role)
    if binding not in list_bindings(store, binding.account_id, binding.user_id):
        raise AccessError(
            f"{binding.user_id} has no {binding.label} in account {binding.account_id}; "
            f"`meterhouse users show {binding.user_id} --account {binding.account_id}` "
            "shows its roles"
        )
    if binding.role == "owner":
        _keep_an_owner(store, binding.account_id, [binding])
    _write_binding(store, binding, deleted=True)
    audit(
        store,
        actor=actor,
        action="role.revoke",
        target_type="role_binding",
        target_id=f"{binding.user_id}:{binding.role}:{binding.scope}:{binding.scope_id}",
        account_id=binding.account_id,
        before=binding.as_dict(),
        after=None,
    )


def _keep_an_owner(store: Store, account_id: str, leaving: list[Binding]) -> None:
    if not leaving:
        return
    owners = {b for b in list_bindings(store, account_id) if b.role == "owner"}
    if owners and owners <= set(leaving):
        raise AccessError(
            f"that would leave account {account_id} without an owner: grant owner to "
            "someone else first"
        )


def _authorize(
    store: Store, account_id: str, actor: str, acting_user: str | None, target_role: str | None
) -> str:
    """The actor to audit; refuses when ``acting_user`` may not make this change."""
    if acting_user is None:
        return actor
    require_user(store, account_id, acting_user)
    roles = frozenset(
        b.role
        for b in list_bindings(store, account_id, acting_user)
        if b.scope == "account" and b.role in MANAGE_ROLES
    )
    if not roles:
        raise AccessError(
            f"{acting_user} may not manage users of account {account_id}: that needs an "
            "account-wide owner or admin role"
        )
    if target_role is not None and not may_manage_role(roles, target_role):
        raise AccessError(f"{acting_user} is an admin: only an owner grants or revokes owner")
    return f"user:{account_id}/{acting_user} via {actor}"


def audit_entries(store: Store, account_id: str = "", *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest audit log entries, newest first (of one account, or all)."""
    if not 1 <= limit <= 10_000:
        raise AccessError(f"limit must be between 1 and 10000, got {limit}")
    return list(
        store.query(
            "SELECT at, actor, action, target_type, target_id, account_id, before, after "
            "FROM audit_log WHERE ({a:String} = '' OR account_id = {a:String}) "
            "ORDER BY at DESC LIMIT {n:UInt32}",
            {"a": account_id, "n": limit},
        ).dicts()
    )
