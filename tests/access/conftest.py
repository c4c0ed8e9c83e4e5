"""Fixtures of the access tests: the cross-tenant world, and the service app on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from meterhouse.access.read_api import install_access
from meterhouse.ledger.api import install_ledger
from meterhouse.service.app import ServiceContext, create_app
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from meterhouse.store.chdb_backend import ChdbStore
from meterhouse.store.migrations import migrate
from tests.access.asgi import Answer, call
from tests.access.world import World, build_world
from tests.support.stores import migrated_store  # noqa: F401

ADMIN_TOKEN = "admin-token-for-access-tests"


@dataclass
class Service:
    app: Starlette
    registry: CollectorRegistry

    def get(self, path: str, token: str | None = None, client: str = "127.0.0.1") -> Answer:
        return call(self.app, "GET", path, token=token, client=client)

    def post(self, path: str, body: Any, token: str | None = None) -> Answer:
        return call(self.app, "POST", path, token=token, body=body)


def make_service(store: Store, **settings: Any) -> Service:
    config = Settings(
        clickhouse_url="chdb:///nonexistent",
        **{"ingest_auth_failure_burst": 100_000, **settings},
    )
    ctx = ServiceContext(
        settings=config, store=store, registry=CollectorRegistry(), admin_token=ADMIN_TOKEN
    )
    install_ledger(ctx)
    install_access(ctx)
    return Service(create_app(ctx), ctx.registry)


@pytest.fixture(scope="module")
def module_store(chdb_data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """One migrated database per test module (migrating costs ~0.5 s)."""
    name = f"t_access_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}"
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
    ).rows
    for (table,) in tables:
        module_store.command(f"TRUNCATE TABLE {table}")
    return module_store


@pytest.fixture(scope="module")
def world(module_store: Store) -> World:
    """Read-only for the tests that use it: they must not change users, roles or keys."""
    return build_world(module_store)


@pytest.fixture(scope="module")
def service(world: World) -> Service:
    return make_service(world.store)


ServiceFactory = Callable[..., Service]


@pytest.fixture
def service_with(clean_store: Store) -> ServiceFactory:
    """A service with settings of the test's choosing, on the emptied module store."""
    return lambda **settings: make_service(clean_store, **settings)
