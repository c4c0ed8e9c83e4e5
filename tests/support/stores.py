"""A migrated embedded store per test: import ``migrated_store`` into an area's conftest.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meterhouse.store.base import Store
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
