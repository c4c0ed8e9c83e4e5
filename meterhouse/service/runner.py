"""`meterhouse run`: own the store, announce where the service listens, serve."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from meterhouse.logs import get_logger
from meterhouse.service.app import create_app
from meterhouse.service.context import ServiceContext
from meterhouse.service.limits import protocol_for
from meterhouse.settings import Settings
from meterhouse.store import Store, open_store
from meterhouse.store.base import OWNER_FILE
from meterhouse.store.migrations import Topology, migrate

log = get_logger(__name__)

ServiceHook = Callable[[ServiceContext], None]
"""Adds routes, metrics, readiness checks or background work to the service (see plugins)."""


@contextmanager
def owner_file(store: Store, service_url: str, admin_token: str) -> Iterator[None]:
    """Tell other local processes who owns the embedded store and how to reach it."""
    data_dir = store.capabilities.data_dir
    if data_dir is None:
        yield
        return
    path: Path = data_dir / OWNER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"pid": os.getpid(), "service_url": service_url, "admin_token": admin_token}, handle
        )
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before announcing, so port 0 resolves to the real port in the owner file."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


GRACEFUL_SHUTDOWN_SECONDS = 30


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM ends `meterhouse run` with exit code 0 once
    the shutdown is done (uvicorn raises the signal again, which killed the process before
    the owner file was removed and the store closed)."""

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)  # type: ignore[arg-type]
        if sig == signal.SIGTERM:
            log.info("SIGTERM: finishing requests in flight, draining, then stopping")
            self._captured_signals = [s for s in self._captured_signals if s != sig]


def serve(settings: Settings, hooks: list[ServiceHook] | None = None) -> None:
    store = open_store(settings)
    try:
        applied = migrate(
            store,
            topology=Topology(settings.clickhouse_cluster),
            job_log_ttl_days=settings.job_log_ttl_days,
        )
        if applied:
            log.info("migrations applied", names=[m.path.name for m in applied])
        admin_token = settings.admin_token.get_secret_value() or secrets.token_urlsafe(32)
        ctx = ServiceContext(
            settings=settings, store=store, registry=CollectorRegistry(), admin_token=admin_token
        )
        for hook in hooks or []:
            hook(ctx)
        app = create_app(ctx)
        sock = bind_socket(settings.host, settings.port)
        host, port = sock.getsockname()[:2]
        url_host = f"[{host}]" if ":" in host else host
        service_url = f"http://{url_host}:{port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            http=protocol_for(settings),
            h11_max_incomplete_event_size=settings.http_max_header_bytes,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        server = _Server(config)
        with owner_file(store, service_url, admin_token):
            log.info("serving", url=service_url, store=store.url.split("@")[-1])
            server.run(sockets=[sock])
    finally:
        store.close()
