"""Grafana sync against a Grafana-shaped server that checks every request and keeps state."""

from __future__ import annotations

import pytest

from meterhouse.access import tenants
from meterhouse.access import users as u
from meterhouse.access.grafana_sync import GrafanaError, folder_uid, sync_grafana
from meterhouse.store.base import Store
from tests.access.fake_grafana import fake_grafana

TOKEN = "glsa_test_token_1234"


@pytest.fixture
def store(clean_store: Store) -> Store:
    for account in ("acme", "globex"):
        tenants.create_account(clean_store, account, actor="t", name=account.title())
        tenants.upsert_team(clean_store, account, "data", "", actor="t", create=True)
        for user in ("olga", "adam", "vic", "gone", "nobody"):
            u.add_user(clean_store, account, user, email=f"{user}@{account}.example", actor="t")
        u.grant(clean_store, u.make_binding(clean_store, account, "olga", "owner"), actor="t")
        u.grant(clean_store, u.make_binding(clean_store, account, "adam", "admin"), actor="t")
        vic = u.make_binding(clean_store, account, "vic", "viewer", team="data")
        u.grant(clean_store, vic, actor="t")
        u.grant(clean_store, u.make_binding(clean_store, account, "gone", "billing"), actor="t")
    return clean_store


def grafana_ids(state_users: list[dict[str, object]]) -> dict[str, int]:
    return {str(user["email"]): int(str(user["userId"])) for user in state_users}


def test_each_account_gets_its_folder_and_team_and_a_second_run_only_reads(store: Store) -> None:
    with fake_grafana(TOKEN) as (url, state):
        for account in ("acme", "globex"):
            for user in ("olga", "adam", "vic", "nobody"):  # "gone" is not in Grafana
                state.add_user(f"{user}@{account}.example")
        stranger = state.add_user("stranger@elsewhere.example")
        ids = grafana_ids(state.org_users)

        result = sync_grafana(store, url, TOKEN, actor="cli:ops")
        assert state.problems == []
        assert sorted(result.missing_users) == [
            "acme: gone@acme.example",
            "globex: gone@globex.example",
        ]
        teams = {team["name"]: team_id for team_id, team in state.teams.items()}
        assert set(teams) == {"mh-acme", "mh-globex"}
        for account in ("acme", "globex"):
            members = state.members[teams[f"mh-{account}"]]
            assert members == {ids[f"{x}@{account}.example"] for x in ("olga", "adam", "vic")}
            uid = folder_uid(account)
            assert state.folders[uid]["title"] == f"{account.title()} ({account})"
            assert sorted(state.permissions[uid], key=str) == sorted(
                [
                    {"teamId": teams[f"mh-{account}"], "permission": 1},
                    {"userId": ids[f"olga@{account}.example"], "permission": 2},
                    {"userId": ids[f"adam@{account}.example"], "permission": 2},
                ],
                key=str,
            )
        assert all(stranger not in members for members in state.members.values())

        writes = len(state.writes())
        again = sync_grafana(store, url, TOKEN, actor="cli:ops")
        assert again.changes == [] and len(state.writes()) == writes
        assert state.problems == []
    audits = store.query("SELECT count() FROM audit_log WHERE action = 'grafana.sync'").scalar()
    assert audits == 1  # the run that changed nothing is not audited


def test_membership_follows_the_roles(store: Store) -> None:
    with fake_grafana(TOKEN) as (url, state):
        for user in ("olga", "adam", "vic"):
            state.add_user(f"{user}@acme.example")
        intruder = state.add_user("intruder@globex.example")
        sync_grafana(store, url, TOKEN, actor="t")
        team_id = next(i for i, t in state.teams.items() if t["name"] == "mh-acme")
        state.members[team_id].add(intruder)  # added by hand in Grafana
        u.revoke(store, u.make_binding(store, "acme", "vic", "viewer", team="data"), actor="t")
        u.revoke(store, u.make_binding(store, "acme", "adam", "admin"), actor="t")
        result = sync_grafana(store, url, TOKEN, actor="t")
        ids = grafana_ids(state.org_users)
        assert state.members[team_id] == {ids["olga@acme.example"]}
        assert f"DELETE /api/teams/{team_id}/members/{intruder}" in result.changes
        assert state.permissions[folder_uid("acme")] == [
            {"teamId": team_id, "permission": 1},
            {"userId": ids["olga@acme.example"], "permission": 2},
        ]
        assert state.problems == []


def test_a_dry_run_writes_nothing(store: Store) -> None:
    with fake_grafana(TOKEN) as (url, state):
        state.add_user("olga@acme.example")
        result = sync_grafana(store, url, TOKEN, actor="t", dry_run=True)
        assert state.writes() == [] and state.problems == []
        assert "POST /api/teams mh-acme" in result.changes
        assert "POST /api/folders mh-acme" in result.changes
    assert store.query("SELECT count() FROM audit_log WHERE action = 'grafana.sync'").scalar() == 0


def test_refusals_and_bad_input_are_clear_errors(store: Store) -> None:
    with fake_grafana(TOKEN) as (url, state):
        with pytest.raises(GrafanaError, match=r"refused GET /api/org/users \(401\)") as refused:
            sync_grafana(store, url, "wrong-token", actor="t")
        assert "wrong-token" not in str(refused.value)
        assert state.problems == ["GET /api/org/users: bad or missing bearer token"]
    with pytest.raises(GrafanaError, match="did not answer"):
        sync_grafana(store, url, TOKEN, actor="t")  # the server is gone now
    with pytest.raises(GrafanaError, match="must start with http"):
        sync_grafana(store, "grafana.local", TOKEN, actor="t")
    with pytest.raises(GrafanaError, match="give --token"):
        sync_grafana(store, url, "", actor="t")


def test_folder_uids_are_valid_and_distinct() -> None:
    assert folder_uid("acme") == "mh-acme"
    odd = [folder_uid(a) for a in ("a.b", "a:b", "x" * 60, "a-b")]
    assert len(set(odd)) == 4 and all(len(uid) <= 40 for uid in odd)
