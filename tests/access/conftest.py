"""Fixtures of the access tests: the cross-tenant world, and the service app on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from meterhouse.access.read_api import install_access
from meterhouse.ledger.api import install_ledger
from meterhouse.service.app import create_app
from meterhouse.service.context import ServiceContext
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from tests.access.asgi import Answer, call
from tests.access.world import World, build_world

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
