"""Accounts, teams and projects: create, list, show, update, each change audited.

Rows are versioned (ReplacingMergeTree on updated_at); reads use FINAL so the latest
version is what every caller sees, merged or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.jsonable import to_jsonable
from meterhouse.store.base import Store

_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
ACCOUNT_FIELDS: Final = (
    "name",
    "organisation",
    "time_zone",
    "plan",
    "stripe_customer_id",
    "custom_instructions",
    "status",
)
PLANS: Final = ("free", "starter", "pro", "enterprise")
T = TypeVar("T")


class TenantError(MeterhouseError):
    """A tenant does not exist, already exists, or a field value is not allowed."""


def check_id(kind: str, value: str) -> str:
    if not _ID.match(value):
        raise TenantError(
            f"{kind} id {value!r} is not allowed: use 1-128 letters, digits, '_', '.', ':' or "
            "'-', starting with a letter or digit"
        )
    return value


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TenantError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Paris or UTC"
        ) from exc
    return value


def now_utc() -> datetime:
    return datetime.now(UTC)


def audit(
    store: Store,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    account_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    store.insert(
        "audit_log",
        {
            "at": [now_utc()],
            "actor": [actor],
            "action": [action],
            "target_type": [target_type],
            "target_id": [target_id],
            "account_id": [account_id],
            "before": [json.dumps(to_jsonable(dict(before)), sort_keys=True) if before else ""],
            "after": [json.dumps(to_jsonable(dict(after)), sort_keys=True) if after else ""],
        },
    )


def audited_write(
    store: Store,
    write: Callable[[], object],
    read_after: Callable[[], T | None],
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    account_id: str,
    before: Mapping[str, Any] | None,
    shown: Callable[[T], Mapping[str, Any]] | None = None,
) -> T:
    """The one way an audited row is created or changed: write it, read it back as stored,
    and record ``before`` (read and checked by the caller) and that ``after``.

    Reading back makes the audit log show what every reader will see (defaults, versions,
    normalised values), not what the caller meant to write; a row not there after its
    write is a store error and leaves no audit entry claiming a change.
    """
    write()
    after = read_after()
    if after is None:
        raise StoreError(f"{target_type} {target_id} is not readable after it was written")
    audit(
        store,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        account_id=account_id,
        before=before,
        # Without ``shown`` the row read back is a mapping already.
        after=shown(after) if shown is not None else cast(Mapping[str, Any], after),
    )
    return after


def get_account(store: Store, account_id: str) -> dict[str, Any] | None:
    result = store.query(
        "SELECT account_id, name, organisation, time_zone, plan, stripe_customer_id, "
        "custom_instructions, status, created_at, updated_at "
        "FROM accounts FINAL WHERE account_id = {id:String}",
        {"id": account_id},
    )
    return next(result.dicts(), None)


def list_accounts(store: Store) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT account_id, name, organisation, time_zone, plan, stripe_customer_id, status "
        "FROM accounts FINAL ORDER BY account_id"
    )
    return list(result.dicts())


def _validate_account_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - set(ACCOUNT_FIELDS)
    if unknown:
        raise TenantError(f"accounts have no field(s) {sorted(unknown)}; fields: {ACCOUNT_FIELDS}")
    if "time_zone" in fields:
        check_time_zone(str(fields["time_zone"]))
    if "plan" in fields and fields["plan"] not in PLANS:
        raise TenantError(f"unknown plan {fields['plan']!r}; plans: {', '.join(PLANS)}")
    if "status" in fields and fields["status"] not in ("active", "suspended", "closed"):
        raise TenantError("status must be active, suspended or closed")


def _write_account(store: Store, row: Mapping[str, Any]) -> None:
    store.insert("accounts", {key: [value] for key, value in row.items()})


def create_account(store: Store, account_id: str, *, actor: str, **fields: Any) -> dict[str, Any]:
    check_id("account", account_id)
    _validate_account_fields(fields)
    if get_account(store, account_id) is not None:
        raise TenantError(f"account {account_id} exists already; use `accounts update`")
    now = now_utc()
    row: dict[str, Any] = {"account_id": account_id, "name": fields.get("name") or account_id}
    row.update({k: v for k, v in fields.items() if k != "name"})
    row.update(created_at=now, updated_at=now)
    return audited_write(
        store,
        lambda: _write_account(store, row),
        lambda: get_account(store, account_id),
        actor=actor,
        action="account.create",
        target_type="account",
        target_id=account_id,
        account_id=account_id,
        before=None,
    )


def update_account(store: Store, account_id: str, *, actor: str, **fields: Any) -> dict[str, Any]:
    _validate_account_fields(fields)
    before = get_account(store, account_id)
    if before is None:
        raise TenantError(f"no account {account_id}; create it with `accounts create`")
    row = {k: before[k] for k in ("account_id", *ACCOUNT_FIELDS, "created_at")}
    row.update(fields)
    row["updated_at"] = max(now_utc(), before["updated_at"])
    return audited_write(
        store,
        lambda: _write_account(store, row),
        lambda: get_account(store, account_id),
        actor=actor,
        action="account.update",
        target_type="account",
        target_id=account_id,
        account_id=account_id,
        before=before,
    )


def _require_account(store: Store, account_id: str) -> None:
    if get_account(store, account_id) is None:
        raise TenantError(f"no account {account_id}; create it with `accounts create`")


def get_team(store: Store, account_id: str, team_id: str) -> dict[str, Any] | None:
    result = store.query(
        "SELECT account_id, team_id, name, created_at, updated_at FROM teams FINAL "
        "WHERE account_id = {a:String} AND team_id = {t:String}",
        {"a": account_id, "t": team_id},
    )
    return next(result.dicts(), None)


def list_teams(store: Store, account_id: str) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT account_id, team_id, name FROM teams FINAL WHERE account_id = {a:String} "
        "ORDER BY team_id",
        {"a": account_id},
    )
    return list(result.dicts())


def upsert_team(
    store: Store, account_id: str, team_id: str, name: str, *, actor: str, create: bool
) -> dict[str, Any]:
    check_id("team", team_id)
    _require_account(store, account_id)
    before = get_team(store, account_id, team_id)
    if create and before is not None:
        raise TenantError(f"team {team_id} exists already in account {account_id}")
    if not create and before is None:
        raise TenantError(f"no team {team_id} in account {account_id}")
    now = now_utc()
    row: dict[str, list[Any]] = {
        "account_id": [account_id],
        "team_id": [team_id],
        "name": [name or team_id],
        "created_at": [before["created_at"] if before else now],
        "updated_at": [max(now, before["updated_at"]) if before else now],
    }
    return audited_write(
        store,
        lambda: store.insert("teams", row),
        lambda: get_team(store, account_id, team_id),
        actor=actor,
        action="team.create" if create else "team.update",
        target_type="team",
        target_id=team_id,
        account_id=account_id,
        before=before,
    )


def get_project(store: Store, account_id: str, project_id: str) -> dict[str, Any] | None:
    result = store.query(
        "SELECT account_id, team_id, project_id, name, created_at, updated_at FROM projects FINAL "
        "WHERE account_id = {a:String} AND project_id = {p:String}",
        {"a": account_id, "p": project_id},
    )
    return next(result.dicts(), None)


def list_projects(
    store: Store, account_id: str, team_id: str | None = None
) -> list[dict[str, Any]]:
    result = store.query(
        "SELECT account_id, team_id, project_id, name FROM projects FINAL "
        "WHERE account_id = {a:String} AND ({t:String} = '' OR team_id = {t:String}) "
        "ORDER BY team_id, project_id",
        {"a": account_id, "t": team_id or ""},
    )
    return list(result.dicts())


def upsert_project(
    store: Store,
    account_id: str,
    project_id: str,
    *,
    team_id: str | None,
    name: str | None,
    actor: str,
    create: bool,
) -> dict[str, Any]:
    check_id("project", project_id)
    _require_account(store, account_id)
    before = get_project(store, account_id, project_id)
    if create and before is not None:
        raise TenantError(f"project {project_id} exists already in account {account_id}")
    if not create and before is None:
        raise TenantError(f"no project {project_id} in account {account_id}")
    team = team_id if team_id is not None else (before["team_id"] if before else "")
    if team and get_team(store, account_id, team) is None:
        raise TenantError(f"no team {team} in account {account_id}; create it first")
    now = now_utc()
    row: dict[str, list[Any]] = {
        "account_id": [account_id],
        "team_id": [team],
        "project_id": [project_id],
        "name": [name or (before["name"] if before else project_id)],
        "created_at": [before["created_at"] if before else now],
        "updated_at": [max(now, before["updated_at"]) if before else now],
    }
    return audited_write(
        store,
        lambda: store.insert("projects", row),
        lambda: get_project(store, account_id, project_id),
        actor=actor,
        action="project.create" if create else "project.update",
        target_type="project",
        target_id=project_id,
        account_id=account_id,
        before=before,
    )
