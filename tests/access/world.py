"""Two tenants with the same shape and the same ids, users of every role and scope, and data
whose every row carries a marker naming its account, team and project.

acme and globex both have teams data and ml, projects churn (team data) and search
(team ml), jobs job-data, job-ml and job-none, runs run-data, run-ml and run-none, and
users with the same ids. A response leaks when it contains a marker its caller may not
see. ``ghost`` is an account with no users at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from meterhouse.access import keys, tenants
from meterhouse.access import users as u
from meterhouse.ledger.grants import create_grant
from meterhouse.store.base import Store

ACCOUNTS: Final = ("acme", "globex")
EXTRA_ACCOUNT: Final = "ghost"
TEAMS: Final = ("data", "ml")
PROJECTS: Final = (("churn", "data"), ("search", "ml"))
# (team, project) of every data row; ('', '') is account-level (no team, no project).
PLACES: Final = (("data", "churn"), ("ml", "search"), ("", ""))
JOBS: Final = {"data": "job-data", "ml": "job-ml", "": "job-none"}

# user -> (role, scope, scope id) ; scope id None = the account itself.
USERS: Final = {
    "owner": ("owner", "account", None),
    "admin": ("admin", "account", None),
    "billing": ("billing", "account", None),
    "member-acct": ("member", "account", None),
    "viewer-acct": ("viewer", "account", None),
    "member-team": ("member", "team", "data"),
    "viewer-team": ("viewer", "team", "data"),
    "member-proj": ("member", "project", "search"),
    "viewer-proj": ("viewer", "project", "churn"),
    "nobody": None,
}


def marker(account: str, team: str, project: str) -> str:
    return f"MK-{account}-{team or 'acct'}-{project or 'none'}"


def email(account: str, user: str) -> str:
    return f"{user}@{account}.example"


@dataclass
class World:
    store: Store
    tokens: dict[tuple[str, str], str]  # (account, user) -> read key token
    extra: dict[str, str]  # named special tokens


def _tenants(store: Store, account: str) -> None:
    tenants.create_account(store, account, actor="test", name=account.title())
    for team in TEAMS:
        tenants.upsert_team(store, account, team, team, actor="test", create=True)
    for project, team in PROJECTS:
        tenants.upsert_project(
            store, account, project, team_id=team, name=project, actor="test", create=True
        )


def _people(store: Store, account: str) -> None:
    for user, binding in USERS.items():
        u.add_user(store, account, user, email=email(account, user), actor="test")
        if binding is None:
            continue
        role, scope, scope_id = binding
        team = scope_id if scope == "team" else ""
        project = scope_id if scope == "project" else ""
        u.grant(store, u.make_binding(store, account, user, role, team, project), actor="test")


def _data(store: Store, account: str, now: datetime) -> None:
    n = len(PLACES)
    marks = [marker(account, team, project) for team, project in PLACES]
    store.insert(
        "usage_events",
        {
            "source": ["tests.access"] * n,
            "event_id": [f"{account}-{i}" for i in range(n)],
            "event_type": ["com.meterhouse.model.call"] * n,
            "kind": ["model"] * n,
            "event_time": [now] * n,
            "ingested_at": [now - timedelta(seconds=1)] * n,
            "local_date": [now.date()] * n,
            "account_id": [account] * n,
            "team_id": [team for team, _ in PLACES],
            "project_id": [project for _, project in PLACES],
            "item": marks,
            "lines.usage_type": [["input"]] * n,
            "lines.quantity": [[Decimal(10)]] * n,
            "lines.unit": [["token"]] * n,
            "lines.unit_price_credits": [[Decimal(1)]] * n,
            "lines.unit_price_usd": [[Decimal("0.01")]] * n,
            "lines.credits": [[Decimal(10)]] * n,
            "lines.usd": [[Decimal("0.1")]] * n,
            "credits": [Decimal(10)] * n,
            "usd": [Decimal("0.1")] * n,
            "priced": [1] * n,
        },
    )
    store.insert(
        "job_definition_events",
        {
            "account_id": [account] * n,
            "team_id": [team for team, _ in PLACES],
            "project_id": [project for _, project in PLACES],
            "job_id": [JOBS[team] for team, _ in PLACES],
            "kind": ["scheduler"] * n,
            "name": marks,
            "status": ["active"] * n,
            "event_time": [now - timedelta(hours=1)] * n,
            "source": ["tests.access"] * n,
            "event_id": [f"def-{account}-{i}" for i in range(n)],
        },
    )
    store.insert(
        "job_run_events",
        {
            "account_id": [account] * n,
            "team_id": [team for team, _ in PLACES],
            "project_id": [project for _, project in PLACES],
            "job_id": [JOBS[team] for team, _ in PLACES],
            "run_id": [JOBS[team].replace("job", "run") for team, _ in PLACES],
            "kind": ["scheduler"] * n,
            "status": ["failed"] * n,
            "status_rank": [3] * n,
            "event_time": [now - timedelta(minutes=5)] * n,
            "error_type": ["E"] * n,
            "error_message": marks,
        },
    )
    store.insert(
        "job_logs",
        {
            "log_time": [now - timedelta(minutes=5)] * n,
            "account_id": [account] * n,
            "team_id": [team for team, _ in PLACES],
            "project_id": [project for _, project in PLACES],
            "job_id": [JOBS[team] for team, _ in PLACES],
            "run_id": [JOBS[team].replace("job", "run") for team, _ in PLACES],
            "kind": ["scheduler"] * n,
            "level": ["error"] * n,
            "message": marks,
            "error_message": marks,
        },
    )
    create_grant(
        store,
        account_id=account,
        kind="top_up",
        amount=Decimal(1000),
        effective_at=now - timedelta(days=1) if now.day > 1 else now - timedelta(seconds=5),
        idempotency_key=f"grant-{account}",
        actor="test",
        description=marker(account, "", ""),
    )


def build_world(store: Store) -> World:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    tokens: dict[tuple[str, str], str] = {}
    for account in ACCOUNTS:
        _tenants(store, account)
        _people(store, account)
        _data(store, account, now)
        for user in USERS:
            tokens[(account, user)] = keys.create_key(
                store, purpose="read", source="", account_id=account, user_id=user, actor="test"
            )[1]
    tenants.create_account(store, EXTRA_ACCOUNT, actor="test")
    extra = {
        "admin-key-acme": keys.create_key(
            store, purpose="admin", source="", account_id="acme", actor="test"
        )[1],
        "ingest-key": keys.create_key(store, purpose="ingest", source="s", actor="test")[1],
        "userless-read-key": keys.create_key(store, purpose="read", source="", actor="test")[1],
    }
    return World(store, tokens, extra)


def visible_places(account: str, user: str, action: str) -> set[tuple[str, str]]:
    """The oracle: which (team, project) rows of ``account`` ``user`` may see for ``action``,
    written from docs/access.md independently of meterhouse/access."""
    binding = USERS[user]
    if binding is None:
        return set()
    role, scope, scope_id = binding
    allowed = {
        "balance": {"owner", "admin", "billing", "member", "viewer"},
        "statement": {"owner", "admin", "billing", "member", "viewer"},
        "jobs": {"owner", "admin", "member", "viewer"},
        "events": {"owner", "admin", "member"},
        "users": {"owner", "admin"},
    }[action]
    if role not in allowed:
        return set()
    if scope == "account":
        return set(PLACES)
    if action in ("balance", "users"):
        return set()
    if scope == "team":
        return {(t, p) for t, p in PLACES if t == scope_id}
    return {(t, p) for t, p in PLACES if p == scope_id}
