"""The migrated stores the tests share (registered for every test by tests/conftest.py).

``migrated_store``: a fresh migrated database of the test's own. ``module_store``: one
migrated database per test module, and ``clean_store`` that database emptied, for modules
whose tests each start from nothing (migrating costs ~0.5 s, emptying ~10 ms).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meterhouse.store.base import Store
from meterhouse.store.chdb_backend import ChdbStore
from meterhouse.store.migrations import migrate


@pytest.fixture
def migrated_store(make_store: Callable[..., Store]) -> Store:
    """A chdb store on this test's own fresh database, with every migration applied."""
    store = make_store("chdb")
    migrate(store)
    return store


@pytest.fixture(params=("chdb", "server"))
def migrated_any_store(request: pytest.FixtureRequest, make_store: Callable[..., Store]) -> Store:
    """A migrated store on this test's own database, once per backend (the server backend
    through clickhouse-connect against the HTTP shim)."""
    store = make_store(request.param)
    migrate(store)
    return store


@pytest.fixture(scope="module")
def module_store(chdb_data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """One migrated database per test module."""
    package = request.module.__name__.split(".")[-2]
    name = f"t_{package}_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}"
    store = ChdbStore(f"chdb://{chdb_data_dir}", name)
    migrate(store)
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
