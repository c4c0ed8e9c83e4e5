"""`meterhouse users sync-grafana`: one Grafana folder and one team per account.

For every account, through Grafana's HTTP API (a service account token with the org Admin
role, sent as ``Authorization: Bearer``), reading before writing so a second run changes
nothing:

    GET    /api/org/users                        org users, to match our users by email
    GET    /api/teams/search?name=mh-<account>   the account's team ...
    POST   /api/teams {"name"}                   ... created when missing
    GET    /api/teams/:id/members                members, then
    POST   /api/teams/:id/members {"userId"}     add users of the account with a binding
    DELETE /api/teams/:id/members/:userId        remove anyone else
    GET    /api/folders/:uid                     the account's folder (uid mh-<account>) ...
    POST   /api/folders {"uid", "title"}         ... created when missing
    GET    /api/folders/:uid/permissions         permissions, replaced when they differ by
    POST   /api/folders/:uid/permissions {"items": [...]}

Folder permissions: the account's team View (1); its account-wide owners and admins Edit
(2). The POST replaces every permission of the folder, which also removes Grafana's default
"Viewer: View, Editor: Edit" entries, so no one outside the account sees the folder (Grafana
admins always do). Users who are not in Grafana yet (matched by email) are reported, not
created: they arrive by SSO or invitation, and the next sync adds them.

Grafana folders cannot narrow data to a team or project: that is the data source's job,
with the per-tenant ClickHouse credentials of `sync-clickhouse`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from meterhouse.access.tenants import audit, list_accounts
from meterhouse.access.users import all_bindings
from meterhouse.errors import MeterhouseError
from meterhouse.store.base import Store

VIEW: Final = 1
EDIT: Final = 2
EDITOR_ROLES: Final = frozenset({"owner", "admin"})
_SIMPLE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,37}$")


class GrafanaError(MeterhouseError):
    """Grafana could not be reached or refused a request."""


def folder_uid(account_id: str) -> str:
    """A Grafana uid (at most 40 of [A-Za-z0-9_-]) unique per account."""
    if _SIMPLE_ID.match(account_id):
        return f"mh-{account_id}"
    return "mhx-" + hashlib.sha256(account_id.encode()).hexdigest()[:32]


def team_name(account_id: str) -> str:
    return f"mh-{account_id}"


@dataclass(frozen=True)
class AccountSpec:
    account_id: str
    title: str
    members: frozenset[str]  # emails, lower case
    editors: frozenset[str]


def desired_accounts(store: Store) -> list[AccountSpec]:
    emails = {
        (str(a), str(u)): str(e).lower()
        for a, u, e in store.query("SELECT account_id, user_id, email FROM users FINAL").rows
    }
    members: dict[str, set[str]] = {}
    editors: dict[str, set[str]] = {}
    for binding in all_bindings(store):
        email = emails.get((binding.account_id, binding.user_id))
        if not email:
            continue
        members.setdefault(binding.account_id, set()).add(email)
        if binding.scope == "account" and binding.role in EDITOR_ROLES:
            editors.setdefault(binding.account_id, set()).add(email)
    return [
        AccountSpec(
            str(account["account_id"]),
            f"{account['name']} ({account['account_id']})",
            frozenset(members.get(account["account_id"], ())),
            frozenset(editors.get(account["account_id"], ())),
        )
        for account in list_accounts(store)
    ]


class GrafanaClient:
    def __init__(self, url: str, token: str, *, timeout: float = 10) -> None:
        if not url.startswith(("http://", "https://")):
            raise GrafanaError(f"Grafana URL must start with http:// or https://, got {url!r}")
        if not token:
            raise GrafanaError("give --token: a Grafana service account token (org Admin)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The decoded JSON answer; None for a 404 when ``missing_ok``."""
        try:
            answer = self.session.request(
                method, f"{self.url}{path}", params=params, json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise GrafanaError(
                f"Grafana at {self.url} did not answer {method} {path}: {exc}"
            ) from exc
        if answer.status_code == 404 and missing_ok:
            return None
        if answer.status_code >= 400:
            raise GrafanaError(
                f"Grafana refused {method} {path} ({answer.status_code}): {answer.text[:300]}"
            )
        return answer.json() if answer.content else None

    def close(self) -> None:
        self.session.close()


@dataclass
class GrafanaSyncResult:
    dry_run: bool
    changes: list[str] = field(default_factory=list)  # "POST /api/teams mh-acme", ...
    missing_users: list[str] = field(default_factory=list)  # "acme: carol@acme.example"

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changes": self.changes,
            "missing_users": self.missing_users,
        }


def _permission_key(item: dict[str, Any]) -> tuple[int, int, str, int]:
    return (
        int(item.get("teamId") or 0),
        int(item.get("userId") or 0),
        str(item.get("role") or ""),
        int(item.get("permission") or 0),
    )


class GrafanaSync:
    def __init__(self, client: GrafanaClient, *, dry_run: bool) -> None:
        self.client = client
        self.result = GrafanaSyncResult(dry_run)

    def change(self, method: str, path: str, what: str, body: dict[str, Any] | None) -> Any:
        self.result.changes.append(f"{method} {path} {what}".strip())
        if self.result.dry_run:
            return None
        return self.client.call(method, path, body=body)

    def team(self, spec: AccountSpec) -> int | None:
        name = team_name(spec.account_id)
        found = self.client.call("GET", "/api/teams/search", params={"name": name}) or {}
        for team in found.get("teams", []):
            if team.get("name") == name:
                return int(team["id"])
        created = self.change("POST", "/api/teams", name, {"name": name})
        return int(created["teamId"]) if created else None

    def members(self, spec: AccountSpec, team_id: int | None, org: dict[str, int]) -> None:
        wanted = {org[email] for email in spec.members if email in org}
        self.result.missing_users += sorted(
            f"{spec.account_id}: {email}" for email in spec.members if email not in org
        )
        current: set[int] = set()
        if team_id is not None:
            listed = self.client.call("GET", f"/api/teams/{team_id}/members") or []
            current = {int(member["userId"]) for member in listed}
        path = f"/api/teams/{team_id if team_id is not None else '<new>'}/members"
        for user_id in sorted(wanted - current):
            self.change("POST", path, f"userId={user_id}", {"userId": user_id})
        for user_id in sorted(current - wanted):
            self.change("DELETE", f"{path}/{user_id}", "", None)

    def folder(self, spec: AccountSpec) -> bool:
        """Whether the folder existed before this sync."""
        uid = folder_uid(spec.account_id)
        if self.client.call("GET", f"/api/folders/{quote(uid)}", missing_ok=True) is not None:
            return True
        self.change("POST", "/api/folders", uid, {"uid": uid, "title": spec.title})
        return False

    def permissions(
        self, spec: AccountSpec, team_id: int | None, org: dict[str, int], existed: bool
    ) -> None:
        uid = quote(folder_uid(spec.account_id))
        items: list[dict[str, int]] = []
        if team_id is not None:
            items.append({"teamId": team_id, "permission": VIEW})
        items += [
            {"userId": org[email], "permission": EDIT}
            for email in sorted(spec.editors)
            if email in org
        ]
        current: set[tuple[int, int, str, int]] = set()
        if existed:
            listed = self.client.call("GET", f"/api/folders/{uid}/permissions") or []
            # Grafana admins always have access; some versions list that as an entry.
            current = {_permission_key(i) for i in listed if i.get("role") != "Admin"}
        if current != {_permission_key(item) for item in items} or team_id is None:
            self.change(
                "POST",
                f"/api/folders/{uid}/permissions",
                f"{len(items)} items",
                {"items": items},
            )

    def account(self, spec: AccountSpec, org: dict[str, int]) -> None:
        team_id = self.team(spec)
        self.members(spec, team_id, org)
        existed = self.folder(spec)
        self.permissions(spec, team_id, org, existed)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()


def sync_grafana(
    store: Store, url: str, token: str, *, actor: str, dry_run: bool = False
) -> GrafanaSyncResult:
    """Make Grafana's folders, teams and folder permissions match the accounts' users."""
    specs = desired_accounts(store)
    client = GrafanaClient(url, token)
    try:
        org = {
            str(user.get("email", "")).lower(): int(user["userId"])
            for user in client.call("GET", "/api/org/users") or []
            if user.get("email")
        }
        sync = GrafanaSync(client, dry_run=dry_run)
        for spec in specs:
            sync.account(spec, org)
    finally:
        client.close()
    if not dry_run and sync.result.changes:
        audit(
            store,
            actor=actor,
            action="grafana.sync",
            target_type="grafana",
            target_id=_without_credentials(url),
            account_id="",
            before=None,
            after=sync.result.summary(),
        )
    return sync.result


def put_dashboard(url: str, token: str, account_id: str, dashboard: dict[str, Any]) -> str:
    """Put ``dashboard`` in the account's folder; "created", "updated" or "unchanged".

    The folder must exist (``meterhouse users sync-grafana`` makes it with the account's
    permissions): creating it here would give it Grafana's default, org-wide ones.

        GET  /api/folders/:uid
        GET  /api/dashboards/uid/:uid
        POST /api/dashboards/db {"dashboard", "folderUid", "overwrite", "message"}
    """
    folder = folder_uid(account_id)
    client = GrafanaClient(url, token)
    try:
        if client.call("GET", f"/api/folders/{quote(folder)}", missing_ok=True) is None:
            raise GrafanaError(
                f"Grafana has no folder {folder} for account {account_id}: run "
                "`meterhouse users sync-grafana` first (it sets who may see the folder)"
            )
        uid = str(dashboard["uid"])
        current = client.call("GET", f"/api/dashboards/uid/{quote(uid)}", missing_ok=True)
        if current is not None:
            meta = current.get("meta", {})
            if meta.get("folderUid") not in (None, folder):
                raise GrafanaError(
                    f"dashboard {uid} exists in another folder ({meta.get('folderUid')}); "
                    "choose another uid"
                )
            stored = {k: v for k, v in current["dashboard"].items() if k not in ("id", "version")}
            if stored == dashboard:
                return "unchanged"
        client.call(
            "POST",
            "/api/dashboards/db",
            body={
                "dashboard": {**dashboard, "id": None},
                "folderUid": folder,
                "overwrite": True,
                "message": "meterhouse dashboards custom sync",
            },
        )
        return "created" if current is None else "updated"
    finally:
        client.close()
