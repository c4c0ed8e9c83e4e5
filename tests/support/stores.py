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
