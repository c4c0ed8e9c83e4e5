"""Fixtures of the ingest tests: the real service app on this test's migrated store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from collectors.service_hook import install_ingest
from meterhouse.access import keys, tenants
from meterhouse.service.app import create_app
from meterhouse.service.context import ServiceContext
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from tests.support.asgi import Answer, call

ADMIN_TOKEN = "admin-token-for-tests"
SOURCE = "platform.test"
# Every account the ingest tests send usage for; "ghost" stays uncreated on purpose.
ACCOUNTS = ("acme", "umbrella", "globex", "initech", "a", "wild", "from-data", "from-subject")


@dataclass
class Service:
    app: Starlette
    store: Store
    registry: CollectorRegistry
    token: str  # an ingest key for SOURCE, any account

    def key(self, source: str = SOURCE, account: str = "", purpose: str = "ingest") -> str:
        return keys.create_key(
            self.store, purpose=purpose, source=source, account_id=account, actor="test"
        )[1]

    def post(
        self,
        body: Any,
        *,
        token: str | None = None,
        content_type: str = "application/cloudevents-batch+json",
        path: str = "/api/v1/events",
        headers: dict[str, str] | None = None,
        client: str = "127.0.0.1",
    ) -> Answer:
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
        sent = {"content-type": content_type, "authorization": f"Bearer {token or self.token}"}
        sent.update(headers or {})
        return call(self.app, "POST", path, headers=sent, body=raw, client=client)

    def scalar(self, sql: str) -> Any:
        return self.store.query(sql).scalar()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


def make_service(store: Store, **settings: Any) -> Service:
    # The app is called without its lifespan, so no spool drainer runs: write directly.
    settings.setdefault("ingest_durability", "direct")
    config = Settings(clickhouse_url="chdb:///nonexistent", **settings)
    ctx = ServiceContext(
        settings=config, store=store, registry=CollectorRegistry(), admin_token=ADMIN_TOKEN
    )
    install_ingest(ctx)
    app = create_app(ctx)
    for account in ACCOUNTS:  # ingest refuses usage of accounts nobody created
        if tenants.get_account(store, account) is None:
            tenants.create_account(store, account, actor="test")
    token = keys.create_key(store, purpose="ingest", source=SOURCE, actor="test")[1]
    return Service(app, store, ctx.registry, token)


@pytest.fixture
def service(clean_store: Store) -> Service:
    return make_service(clean_store, ingest_auth_failure_burst=100_000)


ServiceFactory = Callable[..., Service]


@pytest.fixture
def service_with(clean_store: Store) -> ServiceFactory:
    """A service with settings of the test's choosing."""
    return lambda **settings: make_service(clean_store, **settings)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def event(
    event_id: str,
    event_type: str = "com.meterhouse.model.call",
    *,
    subject: str | None = "acme",
    source: str = SOURCE,
    time: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A CloudEvent; model-call data by default."""
    if event_type == "com.meterhouse.model.call":
        data = {
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 100,
            "output_tokens": 20,
            **data,
        }
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time or now_iso(),
        "data": data,
    }
    if subject is not None:
        body["subject"] = subject
    return body
