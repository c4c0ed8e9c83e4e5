"""Users and role bindings: rules, versioning, and an audit entry for every change."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterhouse.access import keys, tenants
from meterhouse.access import users as u
from meterhouse.access.roles import ROLES, matrix_markdown
from meterhouse.demo.access_seed import seed_access
from meterhouse.demo.generator import generate
from meterhouse.demo.runner import store_tenants
from meterhouse.store.base import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


@pytest.fixture
def acme(clean_store: Store) -> Store:
    tenants.create_account(clean_store, "acme", actor="test")
    tenants.create_account(clean_store, "globex", actor="test")
    tenants.upsert_team(clean_store, "acme", "data", "Data", actor="test", create=True)
    tenants.upsert_project(
        clean_store, "acme", "churn", team_id="data", name="", actor="test", create=True
    )
    tenants.upsert_team(clean_store, "globex", "ops", "Ops", actor="test", create=True)
    return clean_store


def audit_rows(store: Store, action: str) -> list[dict[str, object]]:
    return list(
        store.query(
            "SELECT actor, target_id, account_id, before, after FROM audit_log "
            "WHERE action = {a:String} ORDER BY at",
            {"a": action},
        ).dicts()
    )


def test_add_grant_revoke_remove_round_trip_each_audited(acme: Store) -> None:
    u.add_user(acme, "acme", "alice", email="alice@acme.example", actor="cli:ops")
    u.add_user(acme, "acme", "bob", email="bob@acme.example", name="Bob", actor="cli:ops")
    owner = u.make_binding(acme, "acme", "alice", "owner")
    viewer = u.make_binding(acme, "acme", "bob", "viewer", team="data")
    assert u.grant(acme, owner, actor="cli:ops") is True
    assert u.grant(acme, viewer, actor="cli:ops") is True
    assert u.grant(acme, viewer, actor="cli:ops") is False  # nothing twice
    assert [b.label for b in u.list_bindings(acme, "acme")] == [
        "owner on account",
        "viewer on team data",
    ]
    _, token = keys.create_key(
        acme, purpose="read", source="", account_id="acme", user_id="bob", actor="cli:ops"
    )
    u.revoke(acme, viewer, actor="cli:ops")
    assert u.list_bindings(acme, "acme", "bob") == []
    u.grant(acme, viewer, actor="cli:ops")
    u.remove_user(acme, "acme", "bob", actor="cli:ops")
    assert u.get_user(acme, "acme", "bob") is None
    assert u.list_bindings(acme, "acme", "bob") == []
    key_id = token.split("_")[1]
    assert keys.get_key(acme, key_id).revoked_at is not None  # type: ignore[union-attr]

    creates = audit_rows(acme, "user.create")
    assert [row["target_id"] for row in creates] == ["alice", "bob"]
    assert json.loads(str(creates[1]["after"]))["email"] == "bob@acme.example"
    grants = audit_rows(acme, "role.grant")
    assert [row["target_id"] for row in grants] == [
        "alice:owner:account:acme",
        "bob:viewer:team:data",
        "bob:viewer:team:data",
    ]
    assert json.loads(str(grants[1]["after"])) == viewer.as_dict() and grants[1]["before"] == ""
    revokes = audit_rows(acme, "role.revoke")
    assert len(revokes) == 2 and all(
        json.loads(str(r["before"])) == viewer.as_dict() for r in revokes
    )
    removed = audit_rows(acme, "user.remove")
    assert json.loads(str(removed[0]["before"]))["roles"] == ["viewer on team data"]
    assert removed[0]["after"] == ""
    assert {row["actor"] for row in audit_rows(acme, "api_key.revoke")} == {"cli:ops"}
    assert all(row["account_id"] == "acme" for row in creates + grants + revokes + removed)


def test_a_removed_user_can_come_back_without_its_old_roles(acme: Store) -> None:
    u.add_user(acme, "acme", "bob", email="bob@acme.example", actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "bob", "member"), actor="t")
    u.remove_user(acme, "acme", "bob", actor="t")
    u.add_user(acme, "acme", "bob", email="bob2@acme.example", actor="t")
    assert u.require_user(acme, "acme", "bob")["email"] == "bob2@acme.example"
    assert u.list_bindings(acme, "acme", "bob") == []


@pytest.mark.parametrize(
    ("role", "team", "project", "error"),
    [
        ("owner", "data", "", "account-wide role"),
        ("billing", "", "churn", "account-wide role"),
        ("admin", "data", "", "account-wide role"),
        ("viewer", "ops", "", "no team ops in account acme"),  # globex's team
        ("member", "", "nope", "no project nope"),
        ("member", "data", "churn", "not both"),
        ("superuser", "", "", "unknown role"),
    ],
)
def test_bindings_that_make_no_sense_are_refused(
    acme: Store, role: str, team: str, project: str, error: str
) -> None:
    with pytest.raises(u.AccessError, match=error):
        u.make_binding(acme, "acme", "bob", role, team, project)


def test_bad_user_input_is_refused_clearly(acme: Store) -> None:
    with pytest.raises(u.AccessError, match="not an address"):
        u.add_user(acme, "acme", "bob", email="bob", actor="t")
    with pytest.raises(tenants.TenantError, match="user id"):
        u.add_user(acme, "acme", "bad id!", email="b@x.example", actor="t")
    with pytest.raises(u.AccessError, match="no account nowhere"):
        u.add_user(acme, "nowhere", "bob", email="b@x.example", actor="t")
    u.add_user(acme, "acme", "bob", email="b@x.example", actor="t")
    with pytest.raises(u.AccessError, match="exists already"):
        u.add_user(acme, "acme", "bob", email="b@x.example", actor="t")
    with pytest.raises(u.AccessError, match="no user carol"):
        u.grant(acme, u.make_binding(acme, "acme", "carol", "viewer"), actor="t")
    with pytest.raises(u.AccessError, match="has no viewer on account"):
        u.revoke(acme, u.make_binding(acme, "acme", "bob", "viewer"), actor="t")


def test_acting_users_follow_the_role_rules(acme: Store) -> None:
    for user in ("olga", "adam", "bill", "vera", "zed"):
        u.add_user(acme, "acme", user, email=f"{user}@acme.example", actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "olga", "owner"), actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "adam", "admin"), actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "bill", "billing"), actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "vera", "viewer"), actor="t")
    owner_of_zed = u.make_binding(acme, "acme", "zed", "owner")
    viewer_of_zed = u.make_binding(acme, "acme", "zed", "viewer", team="data")

    for outsider in ("bill", "vera", "zed"):
        with pytest.raises(u.AccessError, match="needs an account-wide owner or admin"):
            u.grant(acme, viewer_of_zed, actor="cli:x", acting_user=outsider)
    with pytest.raises(u.AccessError, match="only an owner"):
        u.grant(acme, owner_of_zed, actor="cli:x", acting_user="adam")
    with pytest.raises(u.AccessError, match="only an owner"):
        u.remove_user(acme, "acme", "olga", actor="cli:x", acting_user="adam")
    with pytest.raises(u.AccessError, match="no user ghost"):
        u.grant(acme, viewer_of_zed, actor="cli:x", acting_user="ghost")

    assert u.grant(acme, viewer_of_zed, actor="cli:x", acting_user="adam")
    assert u.grant(acme, owner_of_zed, actor="cli:x", acting_user="olga")
    u.add_user(acme, "acme", "new", email="new@acme.example", actor="cli:x", acting_user="adam")
    u.remove_user(acme, "acme", "vera", actor="cli:x", acting_user="adam")
    actors = {row["actor"] for row in audit_rows(acme, "role.grant")}
    assert "user:acme/adam via cli:x" in actors and "user:acme/olga via cli:x" in actors
    # An acme admin has no say in globex.
    u.add_user(acme, "globex", "gus", email="gus@globex.example", actor="t")
    with pytest.raises(u.AccessError, match="no user adam in account globex"):
        u.grant(
            acme, u.make_binding(acme, "globex", "gus", "viewer"), actor="x", acting_user="adam"
        )


def test_the_last_owner_cannot_leave(acme: Store) -> None:
    u.add_user(acme, "acme", "olga", email="olga@acme.example", actor="t")
    owner = u.make_binding(acme, "acme", "olga", "owner")
    u.grant(acme, owner, actor="t")
    with pytest.raises(u.AccessError, match="without an owner"):
        u.revoke(acme, owner, actor="t")
    with pytest.raises(u.AccessError, match="without an owner"):
        u.remove_user(acme, "acme", "olga", actor="t")
    u.add_user(acme, "acme", "otto", email="otto@acme.example", actor="t")
    u.grant(acme, u.make_binding(acme, "acme", "otto", "owner"), actor="t")
    u.revoke(acme, owner, actor="t")
    assert [b.user_id for b in u.list_bindings(acme, "acme")] == ["otto"]


def test_read_keys_belong_to_existing_users_of_their_account(acme: Store) -> None:
    u.add_user(acme, "acme", "bob", email="bob@acme.example", actor="t")
    with pytest.raises(keys.ApiKeyError, match="no user bob in account globex"):
        keys.create_key(
            acme, purpose="read", source="", account_id="globex", user_id="bob", actor="t"
        )
    with pytest.raises(keys.ApiKeyError, match="only read keys"):
        keys.create_key(
            acme, purpose="ingest", source="s", account_id="acme", user_id="bob", actor="t"
        )
    key, _ = keys.create_key(
        acme, purpose="read", source="", account_id="acme", user_id="bob", actor="t"
    )
    assert keys.get_key(acme, key.key_id).user_id == "bob"  # type: ignore[union-attr]


def test_revisions_within_one_millisecond_keep_their_order(acme: Store) -> None:
    u.add_user(acme, "acme", "bob", email="bob@acme.example", actor="t")
    binding = u.make_binding(acme, "acme", "bob", "viewer")
    for _ in range(5):  # faster than the clock's milliseconds: versions must still grow
        u.grant(acme, binding, actor="t")
        assert u.list_bindings(acme, "acme", "bob") == [binding]
        u.revoke(acme, binding, actor="t")
        assert u.list_bindings(acme, "acme", "bob") == []


def test_the_demo_has_users_of_several_roles(clean_store: Store) -> None:
    migrated_store = clean_store
    data = generate(datetime(2026, 11, 20, tzinfo=UTC), days=1, seed=7, scale=0.01)
    store_tenants(migrated_store, data, "demo")
    roles = migrated_store.query(
        "SELECT DISTINCT role, scope FROM role_bindings FINAL ORDER BY role, scope"
    ).rows
    assert {role for role, _ in roles} == set(ROLES)
    assert {scope for _, scope in roles} == {"account", "team", "project"}
    granted = len(audit_rows(migrated_store, "role.grant"))
    assert granted == migrated_store.query("SELECT count() FROM role_bindings FINAL").scalar()
    assert seed_access(migrated_store, data, "demo") == 0  # running the demo again


def test_docs_show_the_role_matrix_of_the_code() -> None:
    text = DOC.read_text()
    assert matrix_markdown() in text, "docs/access.md must contain roles.matrix_markdown()"
    for role in ROLES:
        assert re.search(rf"\*\*{role}\*\*", text), role
