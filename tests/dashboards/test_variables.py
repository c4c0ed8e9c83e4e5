"""The project drop-down lists every project: with "All" teams also those without a team;
with teams picked, their projects."""

from __future__ import annotations

import json

from meterhouse.access import tenants as t
from meterhouse.dashboards import default_directory, overview
from meterhouse.store.base import Store
from tests.dashboards.engine import State, resolve_variables


def test_projects_without_a_team_are_listed(migrated_store: Store) -> None:
    store = migrated_store
    t.create_account(store, "acme", actor="test", name="Acme", time_zone="Europe/Paris")
    t.upsert_team(store, "acme", "data", "Data", actor="test", create=True)
    t.upsert_project(store, "acme", "etl", team_id="data", name="ETL", actor="test", create=True)
    t.upsert_project(store, "acme", "loose", team_id="", name="Loose", actor="test", create=True)
    board = overview.build()
    dashboard = json.loads((default_directory() / board.spec.file_name).read_text())

    every = resolve_variables(store, board, dashboard, State("defaults"))
    assert every["project"].options == ["etl", "loose"]

    picked = resolve_variables(store, board, dashboard, State("team", {"team": ["data"]}))
    assert picked["project"].options == ["etl"]
