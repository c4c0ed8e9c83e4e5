"""What one caller may see of one account for one read action, from its role bindings.

The answer is the whole account, or a set of teams and projects (a team covers the rows
of its projects: rows carry both ids), or nothing. Queries apply it as one fixed SQL
condition with array parameters, so no id is ever spliced into SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meterhouse.access.roles import READ_ACTIONS
from meterhouse.access.users import Binding


@dataclass(frozen=True)
class Visibility:
    account_id: str
    whole_account: bool
    teams: frozenset[str] = field(default_factory=frozenset)
    projects: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def everything(cls, account_id: str) -> Visibility:
        return cls(account_id, True)

    @property
    def anything(self) -> bool:
        return self.whole_account or bool(self.teams or self.projects)

    def allows(self, team_id: str, project_id: str) -> bool:
        """Whether a row of this team and project is visible."""
        if self.whole_account:
            return True
        return (bool(team_id) and team_id in self.teams) or (
            bool(project_id) and project_id in self.projects
        )

    def sql_condition(
        self, team_column: str = "team_id", project_column: str = "project_id"
    ) -> tuple[str, dict[str, Any]]:
        """A condition on the row's team and project columns, and its parameters."""
        if self.whole_account:
            return "1 = 1", {}
        return (
            f"({team_column} IN {{mh_teams:Array(String)}} "
            f"OR {project_column} IN {{mh_projects:Array(String)}})",
            {"mh_teams": sorted(self.teams), "mh_projects": sorted(self.projects)},
        )

    def describe(self) -> str:
        if self.whole_account:
            return "the whole account"
        parts = [f"team {t}" for t in sorted(self.teams)]
        parts += [f"project {p}" for p in sorted(self.projects)]
        return ", ".join(parts) or "nothing"


def visibility_of(bindings: Iterable[Binding], account_id: str, action: str) -> Visibility:
    """What ``bindings`` let their user read of ``account_id`` for ``action``."""
    rule = READ_ACTIONS[action]
    granting = [b for b in bindings if b.account_id == account_id and b.role in rule.roles]
    if any(b.scope == "account" for b in granting):
        return Visibility.everything(account_id)
    if rule.account_wide:
        return Visibility(account_id, False)
    return Visibility(
        account_id,
        False,
        frozenset(b.scope_id for b in granting if b.scope == "team"),
        frozenset(b.scope_id for b in granting if b.scope == "project"),
    )
