"""The service's store endpoint: what local CLI commands run on the store `meterhouse run`
holds (meterhouse/store/service_backend.py is its client).

Admin token only, and only from the loopback address: it runs any statement, writes
included, as meterhouse's own ClickHouse user. It is not the ad-hoc SQL endpoint
(/api/v1/sql), which stays read-only unless asked and confined for everyone; this one is
the Store interface itself, so a CLI command does over HTTP exactly what it does on the
store directly:

* ``POST /api/v1/store/query``, ``/command``, ``/query-arrow``: JSON
  ``{"sql", "params", "settings"}``; answers the rows as JSON with their types, ``{}``, or
  an Arrow IPC stream.
* ``POST /api/v1/store/insert-arrow?table=T&settings={...}``: an Arrow IPC stream body
  (at most MH_INGEST_MAX_BODY_BYTES); answers ``{"rows": n}``.

Statements ClickHouse refuses answer 400 with its ``code`` and ``name``; bodies over the
limit 413; anything malformed 400.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from meterhouse.errors import StoreError
from meterhouse.jsonable import result_to_json
from meterhouse.logs import get_logger
from meterhouse.service.auth import authorize_admin
from meterhouse.service.context import ServiceContext, problem
from meterhouse.service.limits import BodyTooLargeError, read_limited
from meterhouse.store.base import check_identifier

log = get_logger(__name__)
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class _Refused(Exception):
    def __init__(self, answer: Response) -> None:
        self.answer = answer


class _RowsJSON(JSONResponse):
    """JSON that keeps a float column's NaN and infinities (both ends are Python)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _admit(ctx: ServiceContext, request: Request) -> None:
    refused = await authorize_admin(ctx, request, "store")
    if refused is not None:
        raise _Refused(refused)
    if not _loopback(request):
        raise _Refused(
            problem(
                403,
                "Forbidden",
                "the store endpoint serves CLI commands on the service's own machine only; "
                "run `meterhouse` there, or use /api/v1/sql and the read APIs",
            )
        )


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _Refused(problem(400, "Bad Request", f"{what} must be a JSON object"))
    return value


async def _statement(ctx: ServiceContext, request: Request) -> tuple[str, dict[str, Any], Any]:
    try:
        body = await read_limited(request, ctx.settings.http_max_body_bytes)
        payload = json.loads(body)
    except BodyTooLargeError as exc:
        raise _Refused(problem(413, "Payload Too Large", str(exc))) from exc
    except (ValueError, RecursionError) as exc:
        raise _Refused(
            problem(400, "Bad Request", 'body must be JSON: {"sql", "params", "settings"}')
        ) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("sql"), str):
        raise _Refused(problem(400, "Bad Request", 'body must be JSON with a "sql" string'))
    return (
        payload["sql"],
        _mapping(payload.get("params"), "params"),
        _mapping(payload.get("settings"), "settings"),
    )


def _settings_param(request: Request) -> dict[str, Any]:
    try:
        loaded = json.loads(request.query_params.get("settings") or "{}")
    except ValueError as exc:
        raise _Refused(problem(400, "Bad Request", "settings must be a JSON object")) from exc
    return _mapping(loaded, "settings")


def _arrow_table(body: bytes) -> Any:
    import pyarrow as pa

    try:
        with pa.ipc.open_stream(body) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise _Refused(
            problem(400, "Bad Request", f"the body is not an Arrow IPC stream: {exc}")
        ) from exc


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


Handler = Callable[["ServiceContext", Request], Awaitable[Response]]


def _guarded(ctx: ServiceContext, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            await _admit(ctx, request)
            return await handler(ctx, request)
        except _Refused as refused:
            return refused.answer
        except StoreError as exc:
            return problem(400, "Statement failed", str(exc), code=exc.code, name=exc.name)
        except (ValueError, TypeError, OverflowError) as exc:
            # What the store refuses before ClickHouse sees it (a bad identifier, a
            # parameter of the wrong shape) is the request's fault.
            return problem(400, "Bad Request", str(exc))

    return endpoint


async def _query(ctx: ServiceContext, request: Request) -> Response:
    sql, params, settings = await _statement(ctx, request)
    result = await asyncio.to_thread(ctx.store.query, sql, params, settings=settings)
    return _RowsJSON(result_to_json(result))


async def _command(ctx: ServiceContext, request: Request) -> Response:
    sql, params, settings = await _statement(ctx, request)
    await asyncio.to_thread(ctx.store.command, sql, params, settings=settings)
    return JSONResponse({})


async def _query_arrow(ctx: ServiceContext, request: Request) -> Response:
    sql, params, settings = await _statement(ctx, request)
    table = await asyncio.to_thread(ctx.store.query_arrow, sql, params, settings=settings)
    return Response(await asyncio.to_thread(_ipc, table), media_type=ARROW_STREAM)


async def _insert_arrow(ctx: ServiceContext, request: Request) -> Response:
    table_name = check_identifier(request.query_params.get("table", ""))
    settings: Mapping[str, Any] = _settings_param(request)
    try:
        body = await read_limited(request, ctx.settings.ingest_max_body_bytes)
    except BodyTooLargeError as exc:
        raise _Refused(problem(413, "Payload Too Large", str(exc))) from exc
    data = await asyncio.to_thread(_arrow_table, body)
    rows = await asyncio.to_thread(ctx.store.insert_arrow, table_name, data, settings=settings)
    log.debug("store endpoint inserted", table=table_name, rows=rows)
    return JSONResponse({"rows": rows})


def store_routes(ctx: ServiceContext) -> list[BaseRoute]:
    base = "/api/v1/store"
    return [
        Route(f"{base}/query", _guarded(ctx, _query), methods=["POST"]),
        Route(f"{base}/command", _guarded(ctx, _command), methods=["POST"]),
        Route(f"{base}/query-arrow", _guarded(ctx, _query_arrow), methods=["POST"]),
        Route(f"{base}/insert-arrow", _guarded(ctx, _insert_arrow), methods=["POST"]),
    ]
