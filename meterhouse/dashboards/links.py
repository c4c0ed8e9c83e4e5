"""Drill-down links between the meterhouse dashboards.

Relative to the dashboard being viewed (``<sub path>/d/<uid>/<slug>``): ``../<uid>``
reaches another dashboard under whatever sub-path Grafana is served from, where an
absolute ``/d/<uid>`` would leave it. Each link carries the time range and the variables
the target dashboard has (``${name:queryparam}`` writes ``var-name=value`` for every
selected value), so the person lands on the same account, teams, projects and range.
tests/dashboards/test_links.py resolves every link against the generated dashboards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from meterhouse.dashboards.grafana import link

# The dashboards' uids (each module's UID), here so links need no import between them.
BILLING: Final = "meterhouse-billing"
EVENTS: Final = "meterhouse-events"
JOBS: Final = "meterhouse-jobs"
MODELS: Final = "meterhouse-models"
OVERVIEW: Final = "meterhouse-overview"
PIPELINE: Final = "meterhouse-pipeline-health"
USAGE: Final = "meterhouse-usage-statement"

TENANT: tuple[str, ...] = ("account", "team", "project")


def url(
    uid: str,
    keep: Sequence[str] = TENANT,
    values: Mapping[str, str] | None = None,
    *,
    view_panel: int | None = None,
) -> str:
    """``../uid?var-…&…&<time range>``: ``keep`` copies variables by name, ``values`` sets
    others (``{"run": "${__data.fields.run_id}"}``)."""
    parts = [f"${{{name}:queryparam}}" for name in keep]
    parts += [f"var-{name}={value}" for name, value in (values or {}).items()]
    if view_panel is not None:
        parts.append(f"viewPanel={view_panel}")
    parts.append("${__url_time_range}")
    return f"../{uid}?" + "&".join(parts)


def to_board(
    title: str,
    uid: str,
    keep: Sequence[str] = TENANT,
    values: Mapping[str, str] | None = None,
    *,
    view_panel: int | None = None,
) -> dashboard_builders.DashboardLink:
    return link(title, url(uid, keep, values, view_panel=view_panel))
