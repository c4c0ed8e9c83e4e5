"""The roles, the scopes they are bound to, and what each role may read: one matrix.

Everything that decides access reads these tables: the read APIs (via visibility.py), the
ClickHouse grants and row policies (clickhouse_plan.py), the management rules of
`meterhouse users ... --as USER` (users.py) and docs/access.md (a test keeps the document's
matrix equal to :func:`matrix_markdown`).

A role binding gives one user one role on one scope of their account: the whole account,
one team (its projects included: rows carry the team of their project), or one project.
``owner``, ``admin`` and ``billing`` are account-wide by nature (they concern the account's
credits and people), so they can only be bound to the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["owner", "admin", "billing", "member", "viewer"]
ScopeKind = Literal["account", "team", "project"]

ROLES: Final[tuple[Role, ...]] = ("owner", "admin", "billing", "member", "viewer")
SCOPES: Final[tuple[ScopeKind, ...]] = ("account", "team", "project")
ACCOUNT_ONLY_ROLES: Final = frozenset({"owner", "admin", "billing"})

ROLE_SUMMARY: Final = {
    "owner": "everything in the account, including granting and revoking owner",
    "admin": "everything in the account except owner bindings; manages users and roles",
    "billing": "credits and money: balance, statements, usage, Stripe mirror; no jobs or logs",
    "member": "works in its scope: usage, statements, jobs, runs and job logs",
    "viewer": "looks at its scope: usage, statements, jobs and runs; no job logs",
}


@dataclass(frozen=True)
class ReadAction:
    """Something a caller may read. ``account_wide``: only account-scoped bindings grant it
    (the data has no team or project, e.g. a balance); otherwise a team- or project-scoped
    binding grants it filtered to that team or project."""

    name: str
    roles: frozenset[str]
    account_wide: bool
    what: str


_ALL: Final = frozenset(ROLES)
READ_ACTIONS: Final = {
    action.name: action
    for action in (
        ReadAction("balance", _ALL, True, "account balance, grants, budgets, issued statements"),
        ReadAction("statement", _ALL, False, "usage statement (scoped bindings: their usage)"),
        ReadAction("jobs", frozenset({"owner", "admin", "member", "viewer"}), False, "jobs, runs"),
        ReadAction("events", frozenset({"owner", "admin", "member"}), False, "job logs"),
        ReadAction(
            "users", frozenset({"owner", "admin"}), True, "users and their roles; audit log"
        ),
        ReadAction("billing", frozenset({"owner", "admin", "billing"}), True, "Stripe mirror"),
    )
}

# Which read action a table's rows belong to, for the per-tenant ClickHouse grants. A table
# with an account_id column that is not listed here gets no grant (and sync reports it), so
# a new table is private until someone decides who may read it.
TABLE_ACTIONS: Final = {
    "usage_events": "statement",
    "usage_daily": "statement",
    "usage_lines_hourly": "statement",
    "usage_events_hourly": "statement",
    "meter_events": "statement",
    "meter_hours": "statement",
    "accounts": "statement",
    "teams": "statement",
    "projects": "statement",
    "credit_grants": "balance",
    "budgets": "balance",
    "statements_issued": "balance",
    "jobs": "jobs",
    "jobs_current": "jobs",
    "job_definition_events": "jobs",
    "job_run_events": "jobs",
    "job_runs": "jobs",
    "job_runs_current": "jobs",
    "job_logs": "events",
    "users": "users",
    "audit_log": "users",
    "stripe_customers": "billing",
    "reconciliation_issues": "billing",
    "notifications": "users",
}
# Tables with an account_id column that no tenant reads in SQL, ever: key hashes, the
# bindings themselves, the operator's price overrides, sealed notification secrets.
# event_claims is the writers' bookkeeping (exporters/claims.py): other accounts' event
# ids sit beside a tenant's in its blocks, and counting it counts deliveries, not events.
PRIVATE_TABLES: Final = frozenset(
    {"api_keys", "role_bindings", "price_book", "notification_channels", "event_claims"}
)

# Management actions, enforced when a user acts through `meterhouse users ... --as USER`.
MANAGE_ROLES: Final = frozenset({"owner", "admin"})


def scope_allowed(role: str, scope: str) -> bool:
    return scope == "account" or role not in ACCOUNT_ONLY_ROLES


def may_manage_role(acting_roles: frozenset[str], target_role: str) -> bool:
    """Owners manage every role; admins every role but owner."""
    if "owner" in acting_roles:
        return True
    return "admin" in acting_roles and target_role != "owner"


def _mark(action: ReadAction, role: str) -> str:
    if role not in action.roles:
        return "-"
    return "account scope" if action.account_wide else "yes (its scope)"


def matrix_rows() -> list[tuple[str, ...]]:
    """(action, what, one cell per role) for every read action, then management."""
    rows = [
        (f"read `{a.name}`", a.what, *(_mark(a, role) for role in ROLES))
        for a in READ_ACTIONS.values()
    ]
    manage = {
        "owner": "yes",
        "admin": "yes, except owner bindings",
        "billing": "-",
        "member": "-",
        "viewer": "-",
    }
    rows.append(
        (
            "manage users",
            "users add/remove/grant/revoke --as USER",
            *(manage[role] for role in ROLES),
        )
    )
    rows.append(
        (
            "bound to",
            "scopes a binding of the role may have",
            *(
                "account" if role in ACCOUNT_ONLY_ROLES else "account, team, project"
                for role in ROLES
            ),
        )
    )
    return rows


def matrix_markdown() -> str:
    """The action x role matrix of docs/access.md (a test keeps them equal)."""
    head = ("action", "what", *ROLES)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in matrix_rows()]
    return "\n".join(lines)
