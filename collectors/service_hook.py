"""The service hook that installs ingest: routes, metrics, and the key admin API.

Key admin endpoints (admin bearer token, as /api/v1/sql) let `meterhouse keys ...` work
while the service owns the embedded store, and make a revocation through them effective
on the next request (the key cache entry is dropped):

    GET  /api/v1/keys[?all=1]            list keys (no hashes)
    POST /api/v1/keys                    {"purpose", "source", "account_id", "expires_in",
                                          "description", "actor"} -> 201 {"key", "token"}
    POST /api/v1/keys/{key_id}/revoke    {"actor"} -> {"key"}
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.ingest import Ingestor
from collectors.metrics import IngestMetrics
from collectors.routes import IngestRoutes
from collectors.validate import Limits
from exporters.clickhouse_writer import ClickHouseWriter
from exporters.spool import Spool, SpoolError
from exporters.spool.replay import ReplayError, replay
from meterhouse.access import keys
from meterhouse.access.key_auth import AuthBrake, KeyDirectory
from meterhouse.access.tenants import TenantError
from meterhouse.jsonable import to_jsonable
from meterhouse.meters.api import service_meters
from meterhouse.rating.rater import Rater
from meterhouse.service.auth import authorize_admin
from meterhouse.service.context import ServiceContext, problem
from meterhouse.service.limits import json_body
from meterhouse.settings import Settings, default_data_dir
from meterhouse.store.base import Store


def spool_directory(settings: Settings, store: Store) -> Path:
    """MH_SPOOL_DIR, else inside the embedded store's directory (the spool belongs to that
    store: deleting the store deletes it too), else per server under the user data dir."""
    if settings.spool_dir:
        return Path(settings.spool_dir).expanduser().resolve()
    if store.capabilities.data_dir is not None:
        return store.capabilities.data_dir / "meterhouse-spool"
    parts = urlsplit(settings.clickhouse_url)
    name = f"{parts.hostname or 'localhost'}-{parts.port or 8123}-{store.database}"
    return default_data_dir() / "spool" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def build_routes(ctx: ServiceContext, rater: Rater | None = None) -> IngestRoutes:
    metrics = IngestMetrics(ctx.registry)
    settings = ctx.settings
    writer = ClickHouseWriter(ctx.store, cluster=bool(settings.clickhouse_cluster))
    meters = service_meters(ctx)
    meters.registry.write_lock = writer.lock
    ingestor = Ingestor(ctx.store, rater or Rater.default(), metrics, writer=writer, meters=meters)
    if settings.ingest_durability == "spool":
        spool = Spool(
            spool_directory(settings, ctx.store),
            ingestor.writer,
            ctx.registry,
            max_bytes=settings.spool_max_bytes,
            batch_rows=settings.spool_drain_batch_rows,
            pace_bytes=settings.spool_pace_bytes,
            on_written=ingestor.written,
            drain_warning_seconds=settings.spool_drain_warning_seconds,
        )
        ingestor.spool = spool
        ctx.on_startup.append(spool.start)
        ctx.on_shutdown.append(spool.stop)
        ctx.readiness_checks.append(spool.full_reason)
        ctx.readiness_warnings.append(spool.drain_warning)
        ctx.routes.append(
            Route("/api/v1/spool/replay/{name}", SpoolReplay(ctx, spool).post, methods=["POST"])
        )
    return IngestRoutes(
        ingestor=ingestor,
        keys=KeyDirectory(ctx.store, settings.ingest_key_cache_seconds),
        limiter=AuthBrake(
            settings.ingest_auth_failure_burst, settings.ingest_auth_failure_per_second
        ),
        limits=Limits.from_settings(settings),
        metrics=metrics,
    )


GIL_SWITCH_SECONDS = 0.0005


def install_ingest(ctx: ServiceContext) -> None:
    """ServiceHook: POST /api/v1/events, POST /v1/traces and /api/v1/keys."""
    # The embedded engine takes the GIL back now and then while it inserts; with request
    # threads busy in Python it waits up to the switch interval each time (5 ms by
    # default), which halves insert speed under load. Shorter turns keep it moving.
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
    ingest = build_routes(ctx)
    admin = KeyAdmin(ctx, ingest.keys)
    ctx.routes.extend(
        [
            Route("/api/v1/events", ingest.events, methods=["POST"]),
            Route("/v1/traces", ingest.traces, methods=["POST"]),
            Route("/api/v1/keys", admin.list_or_create, methods=["GET", "POST"]),
            Route("/api/v1/keys/{key_id}/revoke", admin.revoke, methods=["POST"]),
        ]
    )


class KeyAdmin:
    def __init__(self, ctx: ServiceContext, directory: KeyDirectory) -> None:
        self.ctx = ctx
        self.directory = directory

    async def _payload(self, request: Request) -> dict[str, Any]:
        try:
            payload = await json_body(request)
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}

    async def list_or_create(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "keys")
        if refused is not None:
            return refused
        if request.method == "GET":
            include = request.query_params.get("all", "") in ("1", "true")
            found = await asyncio.to_thread(
                keys.list_keys, self.ctx.store, include_inactive=include
            )
            return JSONResponse({"keys": [to_jsonable(key.as_dict()) for key in found]})
        payload = await self._payload(request)
        try:
            expires = str(payload.get("expires_in") or "")
            key, token = await asyncio.to_thread(
                keys.create_key,
                self.ctx.store,
                purpose=str(payload.get("purpose") or "ingest"),
                source=str(payload.get("source") or ""),
                account_id=str(payload.get("account_id") or ""),
                expires_in=keys.parse_duration(expires) if expires else None,
                description=str(payload.get("description") or ""),
                actor=str(payload.get("actor") or "api:admin"),
            )
        except (keys.ApiKeyError, TenantError) as exc:
            return problem(400, "Bad Request", str(exc))
        return JSONResponse({"key": to_jsonable(key.as_dict()), "token": token}, status_code=201)

    async def revoke(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "keys")
        if refused is not None:
            return refused
        payload = await self._payload(request)
        key_id = request.path_params["key_id"]
        try:
            key = await asyncio.to_thread(
                keys.revoke_key,
                self.ctx.store,
                key_id,
                actor=str(payload.get("actor") or "api:admin"),
            )
        except keys.ApiKeyError as exc:
            return problem(404, "Not Found", str(exc))
        finally:
            self.directory.invalidate(key_id)
        return JSONResponse({"key": to_jsonable(key.as_dict())})


class SpoolReplay:
    """POST /api/v1/spool/replay/{name} (admin token): `meterhouse spool replay` while this
    service owns the spool (exporters/spool/replay.py)."""

    def __init__(self, ctx: ServiceContext, spool: Spool) -> None:
        self.ctx = ctx
        self.spool = spool

    async def post(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "spool")
        if refused is not None:
            return refused
        name = request.path_params["name"]
        try:
            entry = await asyncio.to_thread(replay, self.spool.log, name)
        except ReplayError as exc:
            return problem(404 if "no kept record" in str(exc) else 400, "Cannot replay", str(exc))
        except SpoolError as exc:
            return problem(503, "Service Unavailable", f"the spool cannot take it now: {exc}")
        return JSONResponse({"replayed": to_jsonable(entry.as_json())})
