"""Read API of the ledger, and the service hook that installs it with the gauges.

``GET /api/v1/accounts/{account}/balance[?at=ISO time]``
``GET /api/v1/accounts/{account}/statement?month=YYYY-MM[&team=T][&project=P][&format=F]``

Who may read what is decided in meterhouse/service/auth.py: the admin token reads every
account, a personal read key what its user's roles allow (team- or project-scoped roles
get their own usage only, as JSON); docs/access.md has the rules.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meterhouse.access.tenants import now_utc
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.ledger.amounts import jsonable
from meterhouse.ledger.balance import account_balance
from meterhouse.ledger.errors import LedgerNotFoundError
from meterhouse.ledger.metrics import LedgerMetrics, Refresher
from meterhouse.ledger.months import MonthSpan, account_zone, parse_month, parse_time
from meterhouse.ledger.statement import Scope, build_statement
from meterhouse.ledger.statement_formats import FORMATS, render
from meterhouse.service.auth import authorize_read, authorize_statement
from meterhouse.service.context import ServiceContext, problem

_MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "table": "text/plain; charset=utf-8",
}


async def authorize_account_read(
    ctx: ServiceContext, request: Request, account_id: str
) -> Response | None:
    """None when the caller may read ``account_id``'s balance, else the refusal to send."""
    allowed = await authorize_read(ctx, request, account_id, "balance", "balance")
    return allowed if isinstance(allowed, Response) else None


def _refusal(exc: MeterhouseError) -> Response:
    if isinstance(exc, StoreError):
        return problem(503, "Store unavailable", str(exc))
    if isinstance(exc, LedgerNotFoundError):
        return problem(404, "Not Found", str(exc))
    return problem(400, "Bad Request", str(exc))


def routes(ctx: ServiceContext) -> list[Route]:
    async def balance(request: Request) -> Response:
        account_id = request.path_params["account"]
        refused = await authorize_account_read(ctx, request, account_id)
        if refused is not None:
            return refused
        try:
            zone = await asyncio.to_thread(account_zone, ctx.store, account_id)
            at_text = request.query_params.get("at")
            at = parse_time(at_text, zone) if at_text else now_utc()
            result = await asyncio.to_thread(account_balance, ctx.store, account_id, at)
        except MeterhouseError as exc:
            return _refusal(exc)
        return JSONResponse(jsonable(result.to_dict()))

    async def statement(request: Request) -> Response:
        account_id = request.path_params["account"]
        access = await authorize_statement(ctx, request, account_id)
        if isinstance(access, Response):
            return access
        fmt = request.query_params.get("format", "json")
        if fmt not in FORMATS:
            return problem(400, "Bad Request", f"format must be one of {', '.join(FORMATS)}")
        scope = Scope(team=access.team, project=access.project)
        try:
            zone = await asyncio.to_thread(account_zone, ctx.store, account_id)
            month_text = request.query_params.get("month")
            month = (
                parse_month(month_text)
                if month_text
                else MonthSpan.containing(now_utc(), zone).month
            )
            result = await asyncio.to_thread(
                build_statement, ctx.store, account_id, month, scope=scope
            )
        except MeterhouseError as exc:
            return _refusal(exc)
        if fmt == "json":
            return JSONResponse(access.body(result.to_dict()))
        detail = request.query_params.get("detail", "") in ("1", "true")
        return Response(render(result, fmt, detail=detail), media_type=_MEDIA[fmt])

    return [
        Route("/api/v1/accounts/{account}/balance", balance, methods=["GET"]),
        Route("/api/v1/accounts/{account}/statement", statement, methods=["GET"]),
    ]


def install_ledger(ctx: ServiceContext) -> None:
    """Service hook: the read API, and the budget and balance gauges on the registry."""
    ctx.routes.extend(routes(ctx))
    metrics = LedgerMetrics(ctx.store)
    ctx.registry.register(metrics)
    refresher = Refresher(metrics, ctx.settings.ledger_metrics_refresh_seconds)
    ctx.on_startup.append(refresher.start)
    ctx.on_shutdown.append(refresher.stop)
