"""The migrated stores the tests share (registered for every test by tests/conftest.py).

``migrated_store``: a fresh migrated database of the test's own. ``module_store``: one
migrated database per test module, and ``clean_store`` that database emptied, for modules
whose tests each start from nothing.

On chdb the migrations run once per pytest process, into a template database; each test's
database is then cloned from it (every object's CREATE statement as the engine holds it,
and the rows the migrations wrote), which is faster than migrating again. The migrations
themselves are tested on fresh databases (tests/foundation/test_migrations.py), and
``test_a_clone_equals_a_migrated_database`` there holds the clone to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterhouse.store.base import Store
from meterhouse.store.chdb_backend import ChdbStore
from meterhouse.store.migrations import migrate


@dataclass(frozen=True)
class Template:
    """A migrated database and what it takes to make another one like it."""

    database: str
    creates: tuple[str, ...]  # tables first, then the views that read them
    filled: tuple[str, ...]  # tables the migrations wrote rows into

    @classmethod
    def build(cls, store: Store) -> Template:
        migrate(store)
        rows = store.query(
            "SELECT name, engine, create_table_query, total_rows FROM system.tables "
            "WHERE database = currentDatabase() ORDER BY engine LIKE '%View%', name"
        ).rows
        return cls(
            store.database,
            tuple(create for _, _, create, _ in rows),
            tuple(name for name, engine, _, total in rows if total and "View" not in engine),
        )

    def clone_into(self, store: Store) -> Store:
        """Make ``store``'s (new, empty) database a copy of the template."""
        store.command(f"CREATE DATABASE IF NOT EXISTS {store.database}")
        for create in self.creates:
            store.command(create.replace(f"{self.database}.", f"{store.database}."))
        for table in self.filled:
            store.command(
                f"INSERT INTO {store.database}.{table} SELECT * FROM {self.database}.{table}"
            )
        return store


@pytest.fixture(scope="session")
def store_template(chdb_data_dir: Path) -> Iterator[Template]:
    """The migrated template database of this pytest process (chdb)."""
    store = ChdbStore(f"chdb://{chdb_data_dir}", f"t_template_{uuid.uuid4().hex[:8]}")
    try:
        yield Template.build(store)
    finally:
        store.close()


@pytest.fixture
def migrated_store(make_store: Callable[..., Store], store_template: Template) -> Store:
    """A chdb store on this test's own fresh database, with every migration applied."""
    return store_template.clone_into(make_store("chdb"))


@pytest.fixture(params=("chdb", "server"))
def migrated_any_store(
    request: pytest.FixtureRequest, make_store: Callable[..., Store], store_template: Template
) -> Store:
    """A migrated store on this test's own database, once per backend (the server backend
    through clickhouse-connect against the HTTP shim, which owns its own data directory,
    so it is migrated there)."""
    store = make_store(request.param)
    if request.param == "chdb":
        return store_template.clone_into(store)
    migrate(store)
    return store


@pytest.fixture(scope="module")
def module_store(
    chdb_data_dir: Path, request: pytest.FixtureRequest, store_template: Template
) -> Iterator[Store]:
    """One migrated database per test module."""
    package = request.module.__name__.split(".")[-2]
    name = f"t_{package}_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}"
    store = store_template.clone_into(ChdbStore(f"chdb://{chdb_data_dir}", name))
    try:
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS {name}")
        store.close()


@pytest.fixture
def clean_store(module_store: Store) -> Store:
    """The module's database with every table emptied: each test starts from nothing."""
    tables = module_store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree%' AND name != 'schema_migrations'"
    ).column("name")
    for table in tables:
        module_store.command(f"TRUNCATE TABLE {table}")
    return module_store
