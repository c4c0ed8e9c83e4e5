"""Dashboard variables: account, its time zone, team, project, and small pick lists.

Query variables return (value, text) columns: the plugin takes the first column as the
value used in queries and the second as the label shown in the drop-down. Team and
project allow several values and "All"; panels filter them through ``$__conditionalAll``
so "All" costs no IN list. Variable queries themselves do not rely on that frontend macro:
the project list filters by ``team_id IN (...)`` for picked teams, and lists every
project for "All" (the team variable's custom All value, TEAM_ALL).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as model

from meterhouse.dashboards.grafana import CLICKHOUSE, Board
from meterhouse.dashboards.spec import Kind, columns

ACCOUNTS_SQL = (
    "SELECT account_id, name FROM accounts FINAL WHERE is_deleted = 0 ORDER BY account_id"
)
TZ_SQL = (
    "SELECT time_zone FROM accounts FINAL "
    "WHERE account_id = ${account:singlequote} AND is_deleted = 0"
)
TEAMS_SQL = (
    "SELECT team_id, name FROM teams FINAL "
    "WHERE account_id = ${account:singlequote} AND is_deleted = 0 ORDER BY team_id"
)
# "All" teams inserts TEAM_ALL as it is (a custom All value is not formatted), so the
# list then holds every project of the account, those without a team too; picked teams
# list their own projects.
TEAM_ALL = "'*'"
PROJECTS_SQL = (
    "SELECT project_id, name FROM projects FINAL "
    "WHERE account_id = ${account:singlequote} "
    f"AND ({TEAM_ALL} IN (${{team:singlequote}}) OR team_id IN (${{team:singlequote}})) "
    "AND is_deleted = 0 ORDER BY project_id"
)

JOB_KINDS = ("scheduler", "asset", "webhook", "notification")
USAGE_KINDS = ("model", "job", "api", "meter")  # meter: billed meters (docs/events.md)
LOG_LEVELS = ("error", "warning", "info", "debug")


def query_variable(
    name: str, label: str, sql: str, *, multi: bool = False, hidden: bool = False
) -> dashboard_builders.QueryVariable:
    variable = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .query(sql)
        .datasource(CLICKHOUSE)
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.DISABLED)
        .multi(multi)
        .include_all(multi)
    )
    if hidden:
        variable.hide(model.VariableHide.HIDE_VARIABLE)
    return variable


def tenant(
    board: Board, *, teams: bool = True, projects: bool = True, time_zone: bool = True
) -> None:
    """One account (no "All": its time zone defines the month), then its teams, projects."""
    board.variables(query_variable("account", "Account", ACCOUNTS_SQL))
    board.variable_query("account", ACCOUNTS_SQL, columns(account_id=Kind.STRING, name=Kind.STRING))
    if time_zone:
        board.variables(
            query_variable("tz", "Time zone", TZ_SQL, hidden=True).description(
                "The account's time zone (accounts.time_zone): months and days are its own."
            )
        )
        board.variable_query("tz", TZ_SQL, columns(time_zone=Kind.STRING))
    if teams:
        board.variables(query_variable("team", "Team", TEAMS_SQL, multi=True).all_value(TEAM_ALL))
        board.variable_query("team", TEAMS_SQL, columns(team_id=Kind.STRING, name=Kind.STRING))
    if projects:
        board.variables(query_variable("project", "Project", PROJECTS_SQL, multi=True))
        board.variable_query(
            "project", PROJECTS_SQL, columns(project_id=Kind.STRING, name=Kind.STRING)
        )


def accounts(board: Board) -> None:
    """Several accounts or all of them, for the platform-wide dashboards."""
    board.variables(query_variable("account", "Account", ACCOUNTS_SQL, multi=True))
    board.variable_query("account", ACCOUNTS_SQL, columns(account_id=Kind.STRING, name=Kind.STRING))


def pick_list(board: Board, name: str, label: str, values: Sequence[str]) -> None:
    """A fixed list (job kinds, log levels) with several values and "All"."""
    board.variables(
        dashboard_builders.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .multi(True)
        .include_all(True)
    )


def text_box(board: Board, name: str, label: str, description: str) -> None:
    """Free text; empty means "no filter" (``$__conditionalAll`` turns '' into 1=1)."""
    board.variables(
        dashboard_builders.TextBoxVariable(name)
        .label(label)
        .description(description)
        .default_value("")
    )
