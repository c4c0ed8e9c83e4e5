"""`meterhouse demo --via-api`: the demo's events sent through the real ingest API.

The service is started in this process (uvicorn on a free loopback port, sharing the
open store), a short-lived ingest key is made for the demo's source, and the events go
as CloudEvents batches over HTTP: the same path platforms use, auth, validation and
idempotency included. The key is revoked at the end. Slower than the direct path, which
stays the default.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
import requests
import uvicorn
from prometheus_client import CollectorRegistry

from collectors.service_hook import install_ingest
from meterhouse import records as r
from meterhouse.access import keys
from meterhouse.demo.generator import DEMO_SOURCE, DemoData
from meterhouse.demo.ledger_seed import seed_ledger
from meterhouse.demo.runner import DemoSummary, Progress, store_tenants
from meterhouse.errors import MeterhouseError
from meterhouse.service.app import create_app
from meterhouse.service.context import ServiceContext
from meterhouse.service.runner import bind_socket
from meterhouse.settings import Settings
from meterhouse.store.base import Store

BATCH = 2000
STARTUP_SECONDS = 30.0
KEYED_TABLES = ("usage_events", "job_run_events", "job_logs", "job_definition_events")


def cloud_event(event: r.Event) -> dict[str, Any]:
    """An Event as the CloudEvent a platform would send (subject = account)."""
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.account_id,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
        "data": msgspec.to_builtins(event.data),
    }


def post_events(
    url: str,
    token: str,
    events: Sequence[r.Event],
    progress: Progress,
    *,
    batch: int = BATCH,
) -> None:
    """POST the events in batches; raises MeterhouseError with the service's answer."""
    encoder = msgspec.json.Encoder()
    with requests.Session() as session:
        session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/cloudevents-batch+json",
            }
        )
        for start in range(0, len(events), batch):
            chunk = [cloud_event(e) for e in events[start : start + batch]]
            try:
                answer = session.post(
                    f"{url}/api/v1/events", data=encoder.encode(chunk), timeout=120
                )
            except requests.RequestException as exc:
                raise MeterhouseError(f"the ingest API at {url} did not answer: {exc}") from exc
            if answer.status_code != 204:
                raise MeterhouseError(
                    f"the ingest API refused a demo batch ({answer.status_code}): "
                    f"{answer.text[:2000]}"
                )
            progress("sending events to the ingest API", start + len(chunk), len(events))


@dataclass(frozen=True)
class LocalService:
    url: str
    registry: CollectorRegistry

    def duplicate_rows(self) -> int:
        total = 0.0
        for metric in self.registry.collect():
            if metric.name == "meterhouse_ingest_duplicate_rows":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return int(total)


@contextmanager
def in_process_service(store: Store, settings: Settings) -> Iterator[LocalService]:
    """The ingest service on a free loopback port of this process."""
    ctx = ServiceContext(
        settings=settings,
        store=store,
        registry=CollectorRegistry(),
        admin_token=secrets.token_urlsafe(32),
    )
    install_ingest(ctx)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(ctx), log_config=None, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="demo-ingest", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise MeterhouseError("the in-process ingest service did not start")
            time.sleep(0.02)
        yield LocalService(f"http://127.0.0.1:{port}", ctx.registry)
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()


def _row_counts(store: Store) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count() FROM {t}").scalar()) for t in KEYED_TABLES}


def run_demo_via_api(
    store: Store, data: DemoData, settings: Settings, *, actor: str, progress: Progress
) -> DemoSummary:
    progress("creating accounts, teams and projects", 0, len(data.tenants))
    store_tenants(store, data, actor)
    progress("creating accounts, teams and projects", len(data.tenants), len(data.tenants))
    # The demo backfills weeks of history: let the service take events that old.
    oldest_days = (time.time() - data.start.timestamp()) / 86_400 + 2
    service_settings = settings.model_copy(
        update={"ingest_max_age_days": max(settings.ingest_max_age_days, int(oldest_days))}
    )
    key, token = keys.create_key(
        store,
        purpose="ingest",
        source=DEMO_SOURCE,
        expires_in=timedelta(hours=1),
        description="meterhouse demo --via-api",
        actor=actor,
    )
    before = _row_counts(store)
    try:
        with in_process_service(store, service_settings) as service:
            post_events(service.url, token, data.events, progress)
        # Read after the service stopped: its spool is drained by then, duplicates counted.
        duplicates = service.duplicate_rows()
    finally:
        keys.revoke_key(store, key.key_id, actor=actor)
    after = _row_counts(store)
    written = {t: after[t] - before[t] for t in KEYED_TABLES if after[t] > before[t]}
    seed_ledger(store, data, actor)  # as run_demo does, after the usage it is sized on
    return DemoSummary(len(data.tenants), len(data.events), written, duplicates)
