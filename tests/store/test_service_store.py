"""The service-backed store (a running `meterhouse run`'s /api/v1/sql) on every backend:
the same rows and types through ``query`` and ``query_arrow`` as the store it fronts.

The service runs once on an embedded store and once on the server backend (the HTTP
shim); the reference answers come from the server backend on a copy of the same rows,
since the contract suite shows both backends answer alike.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from meterhouse.errors import StoreError
from meterhouse.store.base import Store
from meterhouse.store.service_backend import ServiceStore
from tests.conftest import StoreFactory
from tests.store.test_contract import SAME_QUERIES, TYPES_COLUMNS, create_types_table
from tests.support.cli import running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ADMIN = "service-store-admin"

SEED_EMBEDDED = textwrap.dedent(
    """
    import sys
    from meterhouse.store.chdb_backend import ChdbStore
    from tests.store.test_contract import TYPES_COLUMNS, create_types_table
    store = ChdbStore(sys.argv[1], "meterhouse")
    create_types_table(store)
    store.insert("typed", TYPES_COLUMNS)
    store.close()
    """
)


@pytest.fixture(params=("chdb", "server"))
def service_store(
    request: pytest.FixtureRequest, tmp_path: Path, make_store: StoreFactory
) -> Iterator[ServiceStore]:
    """A ServiceStore over `meterhouse run` on the named backend, holding the typed rows."""
    env: dict[str, str] = {"MH_ADMIN_TOKEN": ADMIN, "MH_SPOOL_DIR": str(tmp_path / "spool")}
    if request.param == "chdb":
        subprocess.run(
            [sys.executable, "-c", SEED_EMBEDDED, f"chdb://{tmp_path / 'data'}"],
            check=True,
            cwd=Path(__file__).resolve().parents[2],
            timeout=120,
        )
    else:
        server = make_store("server")
        create_types_table(server)
        server.insert("typed", TYPES_COLUMNS)
        env["MH_CLICKHOUSE_URL"] = server.url
    with running_service(tmp_path / "data", **env) as service:
        store = ServiceStore(service.url, ADMIN)
        yield store
        store.close()


@pytest.fixture
def reference(make_store: StoreFactory, database_name: str) -> Store:
    store = make_store("server", f"{database_name}_ref")
    create_types_table(store)
    store.insert("typed", TYPES_COLUMNS)
    return store


def test_service_store_answers_as_the_store_and_refuses_writes(
    service_store: ServiceStore, reference: Store
) -> None:
    for sql, params in SAME_QUERIES[:4]:
        assert service_store.query(sql, params) == reference.query(sql, params), sql
        through_service = service_store.query_arrow(sql, params)
        direct = reference.query_arrow(sql, params)
        assert through_service.column_names == direct.column_names
        assert through_service.to_pylist() == direct.to_pylist(), sql
    with pytest.raises(StoreError):
        service_store.insert_arrow("typed", pa.table({"id": [9]}))
    assert not service_store.capabilities.writes
