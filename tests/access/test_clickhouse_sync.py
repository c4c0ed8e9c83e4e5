"""Per-tenant ClickHouse access: every statement parses, every policy keeps to its tenant.

What the engine here allows is tested on it: each statement through SELECT formatQuery;
each policy's USING expression as a WHERE clause over rows of two tenants; the same
expressions as real row policies of a user (users.xml, in a worker process); CREATE ROW
POLICY itself, which chdb refuses (asserted, so the day it accepts it this test says so).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meterhouse.access import tenants
from meterhouse.access import users as u
from meterhouse.access.clickhouse_plan import (
    HIDDEN_HASH,
    Existing,
    Limits,
    Plan,
    build_plan,
    role_name,
    user_name,
)
from meterhouse.access.clickhouse_sync import check_syntax, discover_tables, sync_clickhouse
from meterhouse.access.roles import PRIVATE_TABLES
from meterhouse.access.users import AccessError, Binding
from meterhouse.errors import StoreError
from meterhouse.store.base import Store
from meterhouse.store.migrations import migrate
from tests.access.tenant_rows import SCOPE_COLUMNS, TENANTS, allowed_places, insert_statements

LIMITS = Limits(max_rows=1000, max_seconds=7)
BINDINGS = (
    Binding("acme", "olga", "owner", "account", "acme"),
    Binding("acme", "bill", "billing", "account", "acme"),
    Binding("acme", "vic", "viewer", "team", "data"),
    Binding("acme", "mia", "member", "project", "search"),
    Binding("acme", "mia", "viewer", "team", "data"),  # two roles add up
    Binding("globex", "olga", "member", "account", "globex"),  # same user id elsewhere
    Binding("glo:bex", "x", "viewer", "project", "p'1"),  # ids that need quoting
)


def fixed_hash(user: str) -> str:
    return "ab" * 32


def plan_for(store: Store, bindings: tuple[Binding, ...] = BINDINGS, **kw: Any) -> Plan:
    existing = kw.pop("existing", Existing())
    return build_plan(
        store.database,
        discover_tables(store),
        bindings,
        existing,
        LIMITS,
        password_hash=kw.pop("password_hash", fixed_hash),
        **kw,
    )


@pytest.fixture(scope="module")
def tenant_store(module_store: Store) -> Store:
    """The migrated module store with rows of two tenants in every account table."""
    columns: dict[str, dict[str, str]] = {}
    for table, name, kind in module_store.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
    ).rows:
        columns.setdefault(table, {})[name] = kind
    engines = dict(
        module_store.query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
        ).rows
    )
    for statement in insert_statements(columns, engines):
        module_store.command(statement)
    return module_store


def test_every_statement_parses_on_the_engine(tenant_store: Store) -> None:
    plan = plan_for(tenant_store)
    kinds = {statement.kind for statement in plan.statements}
    assert kinds == {"profile", "role", "policy", "grant", "user"}
    assert check_syntax(tenant_store, plan.statements) == []
    broken = [*plan.statements[:1]]
    broken[0] = type(broken[0])("policy", "CREATE ROW POLICY p ON t USING TO r", "x")
    assert len(check_syntax(tenant_store, broken)) == 1  # the check can fail


def test_names_are_unique_and_quoted(tenant_store: Store) -> None:
    assert user_name("glo:bex", "x") == "mh/glo%3Abex/x"
    assert role_name(BINDINGS[-1]) == "mh/glo%3Abex/viewer/project/p%271"
    plan = plan_for(tenant_store)
    quoted = [s.sql for s in plan.statements if "glo%3Abex" in s.sql and "USING" in s.sql]
    assert quoted and all("account_id = 'glo:bex' AND project_id = 'p\\'1'" in q for q in quoted)
    names = {role_name(b) for b in BINDINGS}  # one role per (account, role, scope, id)
    assert len(names) == len({(b.account_id, b.role, b.scope, b.scope_id) for b in BINDINGS})


def test_grants_follow_the_roles_and_the_columns(tenant_store: Store) -> None:
    plan = plan_for(tenant_store)
    granted: dict[str, set[str]] = {}
    for role, table in plan.policies:
        granted.setdefault(role, set()).add(table)
    columns = {t.name: t.columns for t in discover_tables(tenant_store)}
    everything = set().union(*granted.values())
    assert all("account_id" in columns[t] for t in everything)
    assert not everything & PRIVATE_TABLES  # key hashes, bindings, price overrides
    assert {"schema_migrations", "sync_state", "stripe_invoices", "model_prices"}.isdisjoint(
        everything
    )
    owner = granted["mh/acme/owner/account"]
    assert {"usage_events", "job_logs", "credit_grants", "users", "audit_log"} <= owner
    billing = granted["mh/acme/billing/account"]
    assert "stripe_customers" in billing and not {"jobs", "job_logs"} & billing
    team = granted["mh/acme/viewer/team/data"]
    assert {"usage_events", "usage_daily", "jobs_current", "teams"} <= team
    assert not {"job_logs", "credit_grants", "accounts", "users"} & team  # viewer; account-level
    project = granted["mh/acme/member/project/search"]
    assert "job_logs" in project and "teams" not in project  # teams has no project_id
    assert sorted(plan.users["mh/acme/mia"]) == [
        "mh/acme/member/project/search",
        "mh/acme/viewer/team/data",
    ]
    assert plan.tables_without_account and not plan.unclassified_tables


def _binding_of(role: str) -> Binding:
    return next(b for b in BINDINGS if role_name(b) == role)


def _check_rows(
    binding: Binding, table: str, rows: list[list[str | None]], columns: frozenset[str]
) -> None:
    """Only the bound tenant's rows, and all of them (projected on the table's columns)."""
    allowed = allowed_places(binding.scope, binding.scope_id)
    seen: set[tuple[str | None, ...]] = set()
    for account, team, project in rows:
        assert account == binding.account_id, f"{table}: {account} row leaked to {binding}"
        assert any(
            (team is None or team == t) and (project is None or project == p) for t, p in allowed
        ), f"{table}: ({team}, {project}) leaked to {binding}"
        seen.add((team, project))
    if binding.account_id in TENANTS:
        for t, p in allowed:
            key = (t if "team_id" in columns else None, p if "project_id" in columns else None)
            assert key in seen, f"{table}: {binding} misses its row {key}"


def test_each_policy_expression_returns_only_its_tenants_rows(tenant_store: Store) -> None:
    plan = plan_for(tenant_store)
    columns = {t.name: t.columns for t in discover_tables(tenant_store)}
    assert len(plan.policies) > 60
    for (role, table), condition in plan.policies.items():
        present = [c for c in SCOPE_COLUMNS if c in columns[table]]
        rows = tenant_store.query(f"SELECT {', '.join(present)} FROM {table} WHERE {condition}")
        full = [
            [dict(zip(present, r, strict=True)).get(c) for c in SCOPE_COLUMNS] for r in rows.rows
        ]
        _check_rows(_binding_of(role), table, full, columns[table])


@pytest.mark.slow  # an engine per worker process
def test_the_engine_enforces_the_policies_as_real_row_policies(
    tenant_store: Store, tmp_path: Path
) -> None:
    """users.xml row policies in a worker process: one process per binding, in parallel."""
    plan = plan_for(tenant_store)
    columns = {t.name: t.columns for t in discover_tables(tenant_store)}
    chosen = [BINDINGS[0], BINDINGS[2], BINDINGS[3]]  # account, team, project scope
    workers = []
    for index, binding in enumerate(chosen):
        role = role_name(binding)
        filters = {t: c for (r, t), c in plan.policies.items() if r == role}
        spec = {"dir": str(tmp_path / str(index)), "database": "policy_db", "filters": filters}
        (tmp_path / str(index)).mkdir()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.access.row_policy_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        workers.append((binding, process, json.dumps(spec)))
    for binding, process, spec_text in workers:
        try:
            out, err = process.communicate(spec_text, timeout=120)
        finally:
            process.kill()
        assert process.returncode == 0, err[-2000:]
        seen = json.loads(out)
        assert seen, binding
        for table, rows in seen.items():
            _check_rows(binding, table, rows, columns[table])


def test_chdb_refuses_create_row_policy(tenant_store: Store) -> None:
    plan = plan_for(tenant_store)
    policy = next(s for s in plan.statements if s.kind == "policy")
    with pytest.raises(StoreError) as refused:
        tenant_store.command(policy.sql)
    assert refused.value.name == "ACCESS_DENIED"


def test_a_second_sync_changes_nothing_and_removals_never_widen(tenant_store: Store) -> None:
    first = plan_for(tenant_store)
    existing = Existing(
        known=True,
        users=frozenset(first.users),
        roles=frozenset(r for roles in first.users.values() for r in roles),
        role_grants=frozenset((user, r) for user, roles in first.users.items() for r in roles),
        policies=frozenset(first.policies),
        grants=frozenset(first.policies),
    )
    again = plan_for(tenant_store, existing=existing)
    assert [s.kind for s in again.statements] == ["profile"]

    fewer = tuple(b for b in BINDINGS if b.user_id != "vic" and b.role != "billing")
    shrink = plan_for(tenant_store, fewer, existing=existing)
    text = [s.sql for s in shrink.statements]
    assert "DROP USER IF EXISTS `mh/acme/vic`" in text
    assert "DROP ROLE IF EXISTS `mh/acme/billing/account`" in text
    assert "REVOKE `mh/acme/billing/account` FROM `mh/acme/bill`" not in text  # dropped whole
    drops = [i for i, s in enumerate(shrink.statements) if s.sql.startswith("DROP ROW POLICY")]
    role_drops = [i for i, s in enumerate(shrink.statements) if s.sql.startswith("DROP ROLE")]
    assert drops and min(drops) > max(role_drops)  # grants go before their policies do
    assert not any("CREATE" in s.sql or s.sql.startswith("GRANT") for s in shrink.statements[1:])

    reset = plan_for(tenant_store, existing=existing, reset_passwords=frozenset({"mh/acme/olga"}))
    altered = [s for s in reset.statements if s.password_of]
    assert [s.password_of for s in altered] == ["mh/acme/olga"]
    assert altered[0].sql.startswith("ALTER USER") and HIDDEN_HASH in altered[0].shown
    assert "ab" * 32 not in altered[0].shown


def test_a_grant_always_comes_after_its_policy(tenant_store: Store) -> None:
    plan = plan_for(tenant_store)
    position = {s.sql: i for i, s in enumerate(plan.statements)}
    for i, statement in enumerate(plan.statements):
        if statement.kind == "grant" and " ON " in statement.sql:
            table = statement.sql.split(" ON ", 1)[1].split(" TO ")[0]
            role = statement.sql.split(" TO ", 1)[1]
            policy = next(
                p
                for p in position
                if p.startswith(f"CREATE ROW POLICY OR REPLACE {role} ON {table} ")
            )
            assert position[policy] < i


def world_with_users(store: Store) -> None:
    tenants.create_account(store, "acme", actor="t")
    tenants.upsert_team(store, "acme", "data", "", actor="t", create=True)
    for user in ("olga", "vic"):
        u.add_user(store, "acme", user, email=f"{user}@acme.example", actor="t")
    u.grant(store, u.make_binding(store, "acme", "olga", "owner"), actor="t")
    u.grant(store, u.make_binding(store, "acme", "vic", "viewer", team="data"), actor="t")


def test_sync_on_the_embedded_engine_is_a_dry_run_only(clean_store: Store) -> None:
    world_with_users(clean_store)
    dry = sync_clickhouse(clean_store, LIMITS, actor="t", dry_run=True)
    assert sorted(dry.plan.users) == ["mh/acme/olga", "mh/acme/vic"]
    assert dry.passwords == {} and dry.applied == 0
    assert all(HIDDEN_HASH in s.shown for s in dry.plan.statements if s.password_of)
    with pytest.raises(AccessError, match="no user management"):
        sync_clickhouse(clean_store, LIMITS, actor="t")


def test_sync_through_a_server_reports_the_refusal_and_audits(
    make_store: Callable[..., Store],
) -> None:
    """The server path (clickhouse-connect over HTTP, here to chdb behind the test shim,
    which refuses access management like chdb): applying stops at the first refusal."""
    store = make_store("server")
    migrate(store)
    world_with_users(store)
    result = sync_clickhouse(store, LIMITS, actor="cli:ops")
    assert not result.ok and result.applied == 0 and result.passwords == {}
    assert "ACCESS_DENIED" in result.error and "access management" in result.error
    entry = store.query("SELECT actor, after FROM audit_log WHERE action = 'clickhouse.sync'").rows
    assert entry[0][0] == "cli:ops" and '"error": "ClickHouse refused' in entry[0][1]
    assert "ab" * 32 not in entry[0][1]
