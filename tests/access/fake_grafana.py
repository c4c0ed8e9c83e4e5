"""A Grafana-shaped HTTP server on 127.0.0.1 for the sync tests: it keeps state, answers
the calls grafana_sync makes with Grafana's documented shapes, and records every request
and every problem with one (auth header, method, path, JSON body shape)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
PERMISSIONS = (1, 2, 4)


@dataclass
class GrafanaState:
    token: str
    org_users: list[dict[str, Any]] = field(default_factory=list)
    teams: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, meta}
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    next_id: int = 100

    def add_user(self, email: str) -> int:
        self.next_id += 1
        self.org_users.append(
            {"orgId": 1, "userId": self.next_id, "email": email, "login": email, "role": "Viewer"}
        )
        return self.next_id

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]


class _Handler(BaseHTTPRequestHandler):
    state: GrafanaState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _problem(self, status: int, why: str) -> None:
        self.state.problems.append(f"{self.command} {self.path}: {why}")
        self._answer(status, {"message": why})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            raise ValueError("body without Content-Type: application/json")
        return json.loads(self.rfile.read(length))

    def _handle(self) -> None:
        try:
            body = self._body()
        except ValueError as exc:
            self._problem(400, str(exc))
            return
        url = urlsplit(self.path)
        self.state.requests.append((self.command, url.path, body))
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._problem(401, "bad or missing bearer token")
            return
        route = f"{self.command} {url.path}"
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        for pattern, handler in _ROUTES:
            found = re.fullmatch(pattern, route)
            if found:
                handler(self, body, query, *found.groups())
                return
        self._problem(404, "no such route")

    do_GET = do_POST = do_DELETE = _handle


def _org_users(h: _Handler, body: Any, query: dict[str, str]) -> None:
    h._answer(200, h.state.org_users)


def _search_teams(h: _Handler, body: Any, query: dict[str, str]) -> None:
    name = query.get("name")
    teams = [t for t in h.state.teams.values() if name is None or t["name"] == name]
    h._answer(200, {"totalCount": len(teams), "teams": teams, "page": 1, "perPage": 1000})


def _create_team(h: _Handler, body: Any, query: dict[str, str]) -> None:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("name"), str)
        or set(body)
        - {
            "name",
            "email",
        }
    ):
        h._problem(400, f"team body must be {{name[, email]}}, got {body!r}")
        return
    if any(t["name"] == body["name"] for t in h.state.teams.values()):
        h._problem(409, "Team name taken")
        return
    h.state.next_id += 1
    team_id = h.state.next_id
    h.state.teams[team_id] = {"id": team_id, "orgId": 1, "name": body["name"], "memberCount": 0}
    h.state.members[team_id] = set()
    h._answer(200, {"message": "Team created", "teamId": team_id})


def _members(h: _Handler, body: Any, query: dict[str, str], team: str) -> None:
    team_id = int(team)
    if team_id not in h.state.teams:
        h._problem(404, "Team not found")
        return
    if h.command == "GET":
        listed = [u for u in h.state.org_users if u["userId"] in h.state.members[team_id]]
        h._answer(200, [{**u, "teamId": team_id} for u in listed])
        return
    if not isinstance(body, dict) or set(body) != {"userId"} or not isinstance(body["userId"], int):
        h._problem(400, f"member body must be {{userId: int}}, got {body!r}")
        return
    if body["userId"] not in {u["userId"] for u in h.state.org_users}:
        h._problem(404, "User not found")
        return
    h.state.members[team_id].add(body["userId"])
    h._answer(200, {"message": "Member added to Team"})


def _remove_member(h: _Handler, body: Any, query: dict[str, str], team: str, user: str) -> None:
    members = h.state.members.get(int(team))
    if members is None or int(user) not in members:
        h._problem(404, "Team member not found")
        return
    members.discard(int(user))
    h._answer(200, {"message": "Team Member removed"})


def _folder(h: _Handler, body: Any, query: dict[str, str], uid: str) -> None:
    if uid not in h.state.folders:
        h._answer(404, {"message": "folder not found"})
        return
    h._answer(200, h.state.folders[uid])


def _create_folder(h: _Handler, body: Any, query: dict[str, str]) -> None:
    if (
        not isinstance(body, dict)
        or set(body) != {"uid", "title"}
        or not _UID.match(str(body["uid"]))
        or not isinstance(body["title"], str)
    ):
        h._problem(400, f"folder body must be {{uid, title}} with a valid uid, got {body!r}")
        return
    if body["uid"] in h.state.folders:
        h._problem(409, "a folder with that uid exists")
        return
    h.state.next_id += 1
    h.state.folders[body["uid"]] = {"id": h.state.next_id, **body, "version": 1}
    # Grafana's defaults for a new folder: every Viewer views, every Editor edits.
    h.state.permissions[body["uid"]] = [
        {"role": "Viewer", "permission": 1},
        {"role": "Editor", "permission": 2},
    ]
    h._answer(200, h.state.folders[body["uid"]])


def _permissions(h: _Handler, body: Any, query: dict[str, str], uid: str) -> None:
    if uid not in h.state.folders:
        h._problem(404, "folder not found")
        return
    if h.command == "GET":
        listed = [
            {"teamId": 0, "userId": 0, "role": "", "permissionName": "View", **item}
            for item in h.state.permissions[uid]
        ]
        h._answer(200, [*listed, {"role": "Admin", "permission": 4, "teamId": 0, "userId": 0}])
        return
    items = body.get("items") if isinstance(body, dict) and set(body) == {"items"} else None
    if not isinstance(items, list) or not all(_item_ok(i) for i in items):
        h._problem(400, f"permissions body must be {{items: [...]}}, got {body!r}")
        return
    h.state.permissions[uid] = items
    h._answer(200, {"message": "Folder permissions updated"})


def _item_ok(item: Any) -> bool:
    if not isinstance(item, dict) or item.get("permission") not in PERMISSIONS:
        return False
    subjects = set(item) - {"permission"}
    return len(subjects) == 1 and subjects <= {"teamId", "userId", "role"}


def _dashboard(h: _Handler, body: Any, query: dict[str, str], uid: str) -> None:
    if uid not in h.state.dashboards:
        h._answer(404, {"message": "Dashboard not found"})
        return
    h._answer(200, h.state.dashboards[uid])


def _save_dashboard(h: _Handler, body: Any, query: dict[str, str]) -> None:
    """POST /api/dashboards/db as Grafana documents it: the dashboard JSON (uid, title,
    panels; id null to create), folderUid of an existing folder, overwrite, message."""
    ok = (
        isinstance(body, dict)
        and set(body) <= {"dashboard", "folderUid", "overwrite", "message"}
        and isinstance(body.get("dashboard"), dict)
        and isinstance(body.get("overwrite", False), bool)
    )
    dashboard = body.get("dashboard") if ok else None
    if not isinstance(dashboard, dict) or not _UID.match(str(dashboard.get("uid", ""))):
        h._problem(400, f"body must be {{dashboard: {{uid, title, panels}}, ...}}, got {body!r}")
        return
    if not isinstance(dashboard.get("title"), str) or not isinstance(dashboard.get("panels"), list):
        h._problem(400, "dashboard needs a title and a list of panels")
        return
    folder = body.get("folderUid")
    if folder not in h.state.folders:
        h._problem(400, f"folder {folder!r} not found")
        return
    uid = dashboard["uid"]
    current = h.state.dashboards.get(uid)
    if current is not None and not body.get("overwrite"):
        h._problem(412, "A dashboard with the same uid already exists")
        return
    if current is None and dashboard.get("id") is not None:
        h._problem(404, "Dashboard not found (an id was given for a new dashboard)")
        return
    version = 1 if current is None else current["dashboard"]["version"] + 1
    h.state.next_id += 1
    saved = {**dashboard, "id": h.state.next_id, "version": version}
    h.state.dashboards[uid] = {"dashboard": saved, "meta": {"folderUid": folder}}
    h._answer(200, {"id": saved["id"], "uid": uid, "status": "success", "version": version})


_ROUTES: list[tuple[str, Any]] = [
    (r"GET /api/org/users", _org_users),
    (r"GET /api/teams/search", _search_teams),
    (r"POST /api/teams", _create_team),
    (r"(?:GET|POST) /api/teams/(\d+)/members", _members),
    (r"DELETE /api/teams/(\d+)/members/(\d+)", _remove_member),
    (r"GET /api/folders/([^/]+)", _folder),
    (r"POST /api/folders", _create_folder),
    (r"(?:GET|POST) /api/folders/([^/]+)/permissions", _permissions),
    (r"GET /api/dashboards/uid/([^/]+)", _dashboard),
    (r"POST /api/dashboards/db", _save_dashboard),
]


@contextmanager
def fake_grafana(token: str) -> Iterator[tuple[str, GrafanaState]]:
    """(base URL, state) of a fake Grafana on a free loopback port; stopped on exit."""
    state = GrafanaState(token)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
