"""Fixtures of the notify tests: two accounts with users, channels' receivers, the app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from meterhouse.access.tenants import create_account
from meterhouse.access.users import Binding, add_user, grant
from meterhouse.service.app import create_app
from meterhouse.service.context import ServiceContext
from meterhouse.service.notify_api import install_notify
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from tests.alerting.stack import WebhookReceiver, webhook_receiver

ADMIN_TOKEN = "admin-token-for-notify-tests"
ALERTS_TOKEN = "alerts-token-for-notify-tests"
SECRET_KEY = "notify-secret-key-for-tests"


def settings(**extra: Any) -> Settings:
    return Settings(
        clickhouse_url="chdb:///nonexistent",
        notify_secret_key=SECRET_KEY,
        alerts_webhook_token=ALERTS_TOKEN,
        notify_retry_base_seconds=0.2,
        notify_max_attempts=3,
        **extra,
    )


@pytest.fixture
def world(migrated_store: Store) -> Store:
    """acme (owner olivia, admin adam, member mia) and globex (owner gus)."""
    store = migrated_store
    for account in ("acme", "globex"):
        create_account(store, account, actor="test")
    for account, user, role in (
        ("acme", "olivia", "owner"),
        ("acme", "adam", "admin"),
        ("acme", "mia", "member"),
        ("globex", "gus", "owner"),
    ):
        add_user(store, account, user, email=f"{user}@{account}.example", actor="test")
        grant(store, Binding(account, user, role, "account", account), actor="test")
    return store


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@dataclass
class App:
    app: Starlette
    ctx: ServiceContext


@pytest.fixture
def service(world: Store) -> Iterator[App]:
    ctx = ServiceContext(
        settings=settings(), store=world, registry=CollectorRegistry(), admin_token=ADMIN_TOKEN
    )
    install_notify(ctx)
    for start in ctx.on_startup:
        start()
    try:
        yield App(create_app(ctx), ctx)
    finally:
        for stop in reversed(ctx.on_shutdown):
            stop()
