"""Store fixtures, shared by every test that needs ClickHouse.

chdb runs one data directory per process, so this pytest process opens the embedded engine
only on ``chdb_data_dir``; the server backend talks to a ClickHouse HTTP shim in a
subprocess that owns its own directory (tests/support/clickhouse_http.py). Each test gets
its own database on both.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meterhouse.store.base import Store
from meterhouse.store.chdb_backend import ChdbStore
from meterhouse.store.server_backend import ServerStore
from tests.support.clickhouse_http import ShimProcess

# What every area shares: the migrated stores (migrated_store, module_store, clean_store,
# ...) and the CLI in this process (meterhouse_here).
pytest_plugins = ["tests.support.stores", "tests.support.inprocess"]

BACKENDS = ("chdb", "server")
StoreFactory = Callable[..., Store]


@pytest.fixture(scope="session")
def chdb_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chdb data directory this pytest process may open."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def clickhouse_http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT) of a ClickHouse HTTP interface backed by chdb."""
    root = tmp_path_factory.mktemp("clickhouse_http")
    with ShimProcess(root / "data", log_path=root / "shim.log") as shim:
        yield shim.url


@pytest.fixture
def database_name(request: pytest.FixtureRequest) -> str:
    """A database name of this test's own."""
    stem = re.sub(r"\W+", "_", request.node.name).strip("_")[:40]
    return f"t_{stem}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, chdb_data_dir: Path, database_name: str
) -> Iterator[StoreFactory]:
    """Open a store of the named backend ("chdb" or "server") on this test's database."""
    opened: list[Store] = []

    def make(backend: str, database: str = database_name) -> Store:
        if backend == "chdb":
            store: Store = ChdbStore(f"chdb://{chdb_data_dir}", database)
        elif backend == "server":
            base = request.getfixturevalue("clickhouse_http_url")
            store = ServerStore(base.replace("http://", "http://default:@") + f"/{database}", "x")
        else:
            raise ValueError(f"unknown store backend {backend!r}")
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, make_store: StoreFactory) -> Store:
    """The same test, once per backend."""
    return make_store(request.param)
