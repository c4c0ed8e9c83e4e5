"""Numbered migrations: in order, once, refusing edited files, rendering for clusters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meterhouse.errors import MigrationError
from meterhouse.store.base import Store
from meterhouse.store.migrations import (
    Topology,
    load_migrations,
    migrate,
    render_migration,
    schema_dir,
    split_statements,
)
from tests.conftest import StoreFactory


def test_every_file_applies_once_in_order(make_store: StoreFactory) -> None:
    store: Store = make_store("chdb")
    first = migrate(store, job_log_ttl_days=30)
    assert [m.version for m in first] == sorted(m.version for m in load_migrations())
    assert migrate(store, job_log_ttl_days=30) == []
    recorded = store.query("SELECT version FROM schema_migrations ORDER BY version").column(
        "version"
    )
    assert recorded == [m.version for m in first]


def test_an_edited_applied_file_is_refused(make_store: StoreFactory, tmp_path: Path) -> None:
    store: Store = make_store("chdb")
    copy = tmp_path / "schema"
    shutil.copytree(schema_dir(), copy)
    migrate(store, directory=copy)
    target = sorted(copy.glob("0001_*.sql"))[0]
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(store, directory=copy)


def test_a_new_file_is_applied_after_the_others(make_store: StoreFactory, tmp_path: Path) -> None:
    store: Store = make_store("chdb")
    copy = tmp_path / "schema"
    shutil.copytree(schema_dir(), copy)
    migrate(store, directory=copy)
    (copy / "9999_extra.sql").write_text(
        "-- a later migration; comments; and a semicolon in a comment\n"
        "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS region String DEFAULT '';\n"
    )
    applied = migrate(store, directory=copy)
    assert [m.name for m in applied] == ["extra"]
    columns = store.query("DESCRIBE TABLE accounts").column("name")
    assert "region" in columns


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_job_log_ttl_follows_the_setting(migrated_store: Store) -> None:
    migrate(migrated_store, job_log_ttl_days=7)
    engine = migrated_store.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'job_logs'"
    ).scalar()
    assert "toIntervalDay(7)" in engine


def test_split_statements_ignores_comments() -> None:
    sql = "-- header; with semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n"
    assert split_statements(sql) == ["CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1"]


@pytest.mark.parametrize(
    "topology", [Topology("main"), Topology("main", sharded=True)], ids=["replicated", "sharded"]
)
def test_cluster_variants_are_valid_clickhouse(migrated_store: Store, topology: Topology) -> None:
    """The real engine's parser accepts every rendered statement (formatQuery)."""
    migrations = load_migrations()
    for migration in migrations:
        for statement in render_migration(migration, topology, migrations):
            formatted = migrated_store.query("SELECT formatQuery({q:String})", {"q": statement})
            assert formatted.scalar()
            if statement.startswith("ALTER TABLE"):
                assert "ON CLUSTER 'main'" in statement
                if topology.sharded and "INDEX" in statement:
                    assert statement.split()[2].endswith("_local")
            if statement.startswith("CREATE TABLE") and " AS " not in statement.split("(")[0]:
                assert "ON CLUSTER 'main'" in statement
                assert "ENGINE = Replicated" in statement


def test_sharded_views_read_and_write_local_tables() -> None:
    usage = next(m for m in load_migrations() if m.name == "usage")
    rendered = render_migration(usage, Topology("main", sharded=True))
    view = next(s for s in rendered if "MATERIALIZED VIEW" in s)
    assert "TO usage_daily_local" in view and "FROM usage_events_local" in view
    distributed = next(s for s in rendered if "Distributed" in s and "usage_events " in s)
    assert "cityHash64(account_id)" in distributed


def test_sharded_column_changes_reach_the_distributed_table_too() -> None:
    migrations = load_migrations()
    billing = next(m for m in migrations if "ADD COLUMN" in m.sql)
    rendered = render_migration(billing, Topology("main", sharded=True), migrations)
    targets = [s.split()[2] for s in rendered if s.startswith("ALTER TABLE") and "COLUMN" in s]
    assert any(t.endswith("_local") for t in targets)
    assert any(not t.endswith("_local") for t in targets)


def test_a_clone_equals_a_migrated_database(
    make_store: StoreFactory, migrated_store: Store, database_name: str
) -> None:
    """The tests' stores are clones of one migrated template (tests/support/stores.py):
    each object, its definition and the migrations' own rows equal a fresh migration's."""
    fresh = make_store("chdb", f"{database_name}_fresh")
    migrate(fresh)

    def objects(store: Store) -> list[tuple[str, str, str]]:
        rows = store.query(
            "SELECT name, engine, create_table_query FROM system.tables "
            "WHERE database = currentDatabase() ORDER BY name"
        ).rows
        return [(n, e, q.replace(f"{store.database}.", "db.")) for n, e, q in rows]

    def recorded(store: Store) -> list[tuple[object, ...]]:
        return store.query("SELECT version, checksum FROM schema_migrations ORDER BY version").rows

    assert len(objects(fresh)) > 30
    assert objects(migrated_store) == objects(fresh)
    assert recorded(migrated_store) == recorded(fresh)
    assert migrate(migrated_store) == []
