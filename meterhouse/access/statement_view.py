"""The usage statement as a team- or project-scoped caller may see it.

A statement of a team or project still carries account-level figures: the opening and
closing balance, the grants, expiries and "usage elsewhere in the account" lines, and a
running balance on every line. A caller whose roles cover only some teams or projects
must not learn those, so it gets:

* a scope its bindings cover (asked for with team=/project=, or its only one), and
* the JSON statement with only its usage (usage and adjustment lines, usage totals,
  daily usage); every account-level figure is left out. Rendered formats (csv, html,
  table) print balances, so they are for account-wide callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from meterhouse.access.visibility import Visibility

SCOPED_LINE_TYPES: Final = ("usage", "adjustment")
SCOPED_SUMMARY: Final = ("usage_debits", "usd", "events", "unpriced_events")
SCOPED_NOTE: Final = (
    "Your access covers {what}: this statement shows that usage only. Balances, grants, "
    "expiries and the account's other usage are account-level and need an account-wide role."
)


@dataclass(frozen=True)
class ScopeRefused(Exception):
    """The caller may not have the statement it asked for (status 400 or 403)."""

    status: int
    detail: str


@dataclass(frozen=True)
class StatementScope:
    team: str
    project: str
    redacted: bool  # True: serve only the scoped JSON view


def resolve_scope(
    vis: Visibility,
    team: str,
    project: str,
    team_of_project: Callable[[str], str | None],
) -> StatementScope:
    """The scope to build the statement for, given what the caller asked and may see."""
    if vis.whole_account:
        return StatementScope(team, project, redacted=False)
    if not vis.anything:
        raise ScopeRefused(403, f"your roles do not allow reading statements of {vis.account_id}")
    if project:
        if project in vis.projects:
            return StatementScope(team, project, redacted=True)
        owner_team = team_of_project(project)
        if owner_team and owner_team in vis.teams and team in ("", owner_team):
            return StatementScope(owner_team, project, redacted=True)
        raise ScopeRefused(403, f"your access covers {vis.describe()}, not project {project}")
    if team:
        if team in vis.teams:
            return StatementScope(team, "", redacted=True)
        raise ScopeRefused(403, f"your access covers {vis.describe()}, not team {team}")
    if len(vis.teams) + len(vis.projects) == 1:
        return StatementScope(
            next(iter(vis.teams), ""), next(iter(vis.projects), ""), redacted=True
        )
    raise ScopeRefused(
        400, f"your access covers {vis.describe()}: say which with team= or project="
    )


def redact(statement: dict[str, Any], vis: Visibility) -> dict[str, Any]:
    """The JSON statement with every account-level figure left out."""
    summary = statement.get("summary", {})
    lines = [
        {key: value for key, value in line.items() if key != "balance"}
        for line in statement.get("lines", [])
        if line.get("type") in SCOPED_LINE_TYPES
    ]
    scope = dict(statement.get("scope", {}))
    scope["note"] = SCOPED_NOTE.format(what=vis.describe())
    return {
        "account": statement.get("account"),
        "month": statement.get("month"),
        "period": statement.get("period"),
        "scope": scope,
        "summary": {key: summary.get(key) for key in SCOPED_SUMMARY},
        "lines": lines,
        "daily_usage": statement.get("daily_usage"),
        "generated_at": statement.get("generated_at"),
    }
