"""The ASGI app of `meterhouse run`: health, metrics, admin SQL, the store endpoint of
local CLI commands (store_api.py), and the collectors' routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from meterhouse.adhoc_sql import AdhocLimits, AdhocSqlError, run_adhoc
from meterhouse.errors import StoreError
from meterhouse.jsonable import result_to_json
from meterhouse.logs import get_logger
from meterhouse.service.auth import authorize_sql, metrics_scope
from meterhouse.service.context import ServiceContext, problem
from meterhouse.service.limits import BodyLimit, json_body
from meterhouse.service.store_api import store_routes

log = get_logger(__name__)

TENANT_LABELS: Final = frozenset(
    {
        "account",
        "account_id",
        "scope_id",
        "team",
        "team_id",
        "project",
        "project_id",
        "user",
        "user_id",
        "customer",
        "customer_id",
    }
)


class ServiceWide:
    """The registry's series without any that name a tenant (by TENANT_LABELS): what an
    anonymous scrape of /metrics gets, so account ids and their figures stay behind the
    metrics token as they stay behind keys on the read API."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            samples = [s for s in family.samples if not TENANT_LABELS.intersection(s.labels)]
            if family.samples and not samples:
                continue
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = samples
            yield kept


def create_app(ctx: ServiceContext) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        reasons: list[str] = []
        try:
            await asyncio.to_thread(ctx.store.query, "SELECT 1")
        except StoreError as exc:
            reasons.append(f"store: {exc}")
        reasons.extend(reason for check in ctx.readiness_checks if (reason := check()))
        warnings = [warning for check in ctx.readiness_warnings if (warning := check())]
        extra = {"warnings": warnings} if warnings else {}
        if reasons:
            body = {"status": "not ready", "reasons": reasons, **extra}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", **extra})

    async def metrics(request: Request) -> Response:
        scope = await metrics_scope(ctx, request)
        if isinstance(scope, Response):
            return scope
        source = ctx.registry if scope else ServiceWide(ctx.registry)
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    async def sql(request: Request) -> Response:
        # Admin token only; keys get 403 saying why (meterhouse/service/auth.py).
        refused = await authorize_sql(ctx, request)
        if refused is not None:
            return refused
        try:
            payload = await json_body(request)
        except ValueError:
            return problem(400, "Bad Request", 'body must be JSON: {"sql": "..."}')
        if not isinstance(payload, dict) or not isinstance(payload.get("sql"), str):
            return problem(400, "Bad Request", 'body must be JSON: {"sql": "..."}')
        # A server runs queries side by side; the embedded engine one at a time.
        shared = ctx.store.capabilities.data_dir is not None
        limits = AdhocLimits.of(ctx.settings, shared=shared)
        try:
            result = await asyncio.to_thread(
                run_adhoc,
                ctx.store,
                payload["sql"],
                write=bool(payload.get("write")),
                limits=limits,
            )
        except AdhocSqlError as exc:
            return problem(400, "Bad Request", str(exc))
        except StoreError as exc:
            return problem(400, "Query failed", str(exc), code=exc.code)
        return JSONResponse(result_to_json(result))

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/v1/sql", sql, methods=["POST"]),
        *store_routes(ctx),
        *ctx.routes,
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for start in ctx.on_startup:
            await asyncio.to_thread(start)
        try:
            yield
        finally:
            for stop in reversed(ctx.on_shutdown):
                await asyncio.to_thread(stop)

    # Ingest bodies have their own (usually larger) limit; the collectors enforce it too.
    body_limit = max(ctx.settings.http_max_body_bytes, ctx.settings.ingest_max_body_bytes)
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BodyLimit, limit=body_limit)],
        # Values no parser bounded (a date past year 9999, nesting past the stack) are the
        # request's fault: a 400 saying so, not a 500.
        exception_handlers={OverflowError: _out_of_range, RecursionError: _out_of_range},
    )


async def _out_of_range(request: Request, exc: Exception) -> Response:
    log.warning("request refused: a value out of range", path=request.url.path, error=str(exc))
    return problem(400, "Bad Request", f"a value in the request is out of range: {exc}")
