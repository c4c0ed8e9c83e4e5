"""OpenMeter's meter API on `meterhouse run`: the same paths, parameters and JSON, so
OpenMeter's SDKs work unchanged (shapes: /work/shared/reference/openmeter, docs/events.md).

    GET    /api/v1/meters                                   every reader
    POST   /api/v1/meters                                   admin token
    GET    /api/v1/meters/{meterIdOrSlug}                   every reader
    PUT    /api/v1/meters/{meterIdOrSlug}                   admin token (MeterUpdate)
    DELETE /api/v1/meters/{meterIdOrSlug}                   admin token
    GET    /api/v1/meters/{meterIdOrSlug}/query             JSON, or CSV (Accept: text/csv)
    POST   /api/v1/meters/{meterIdOrSlug}/query             the same, parameters as JSON
    GET    /api/v1/meters/{meterIdOrSlug}/subjects
    GET    /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values
    GET    /api/v1/subjects, /api/v1/subjects/{subjectIdOrKey}
    GET    /api/v1/events                                   free-form events, newest first

Readers are those of every read API (meterhouse/service/auth.py): the admin token and
account-less admin keys see every account's events; an account's admin key, or a read
key whose roles allow usage (``statement``), only that account's, and a team- or
project-scoped read key only its team's or project's. Errors are problem+json.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meterhouse.access.tenants import now_utc
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.meters.billing import BillableMeters
from meterhouse.meters.definition import MeterError, new_ulid, parse
from meterhouse.meters.listing import MAX_EVENTS, EventFilter, list_events, list_subjects
from meterhouse.meters.query import (
    MeterQuery,
    Row,
    Scope,
    group_values,
    run_query,
    subjects,
    value_problem,
)
from meterhouse.meters.registry import (
    MeterConflictError,
    MeterNotFoundError,
    Registry,
    load_file,
)
from meterhouse.service.auth import authorize_admin, read_auth
from meterhouse.service.context import ServiceContext, once_per_context, problem
from meterhouse.service.limits import json_body

Handler = Callable[[Request], Awaitable[Response]]
MAX_FILTER_TEXT = 4096


def _failure(exc: MeterhouseError) -> Response:
    if isinstance(exc, StoreError):
        return problem(503, "Service Unavailable", f"the store cannot answer now: {exc}")
    if isinstance(exc, MeterNotFoundError):
        return problem(404, "Not Found", str(exc))
    if isinstance(exc, MeterConflictError):
        return problem(409, "Conflict", str(exc), field=exc.field)
    if isinstance(exc, MeterError):
        return problem(400, "Bad Request", str(exc), field=exc.field)
    return problem(400, "Bad Request", str(exc))


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise MeterError(name, f"{raw[:40]!r} is not an RFC 3339 date-time") from exc
    if moment.tzinfo is None:
        raise MeterError(name, "needs a time zone offset, e.g. 2026-01-01T00:00:00Z")
    return moment


def _filters(request: Request) -> dict[str, tuple[str, ...]]:
    """filterGroupBy as OpenMeter documents it (``filterGroupBy[model]=gpt-4``), or as one
    value holding an object: the openmeter Python SDK sends the dict's Python repr
    (``{'model': 'gpt-4'}``), read here as a literal, never evaluated."""
    found: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("filterGroupBy[") and name.endswith("]"):
            found.setdefault(name[len("filterGroupBy[") : -1], []).append(value)
        elif name == "filterGroupBy":
            if len(value) > MAX_FILTER_TEXT:
                raise MeterError("filterGroupBy", "is too long")
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                raise MeterError(
                    "filterGroupBy", "use filterGroupBy[group]=value (or a JSON object)"
                ) from exc
            if not isinstance(parsed, dict):
                raise MeterError("filterGroupBy", "must be an object: group -> value")
            for key, item in parsed.items():
                if not isinstance(key, str) or not isinstance(item, str):
                    raise MeterError("filterGroupBy", "group names and values are strings")
                found.setdefault(key, []).append(item)
    return {key: tuple(values) for key, values in found.items()}


def _query_of(request: Request) -> MeterQuery:
    params = request.query_params
    if "filterCustomerId" in params:
        raise MeterError("filterCustomerId", "meterhouse has no customers: filter by subject")
    advanced: dict[str, Any] = {}
    raw_advanced = params.get("advancedMeterGroupByFilters")
    if raw_advanced:
        if len(raw_advanced) > MAX_FILTER_TEXT:
            raise MeterError("advancedMeterGroupByFilters", "is too long")
        try:
            advanced = json.loads(raw_advanced)
        except (ValueError, RecursionError) as exc:
            raise MeterError("advancedMeterGroupByFilters", "must be a JSON object") from exc
        if not isinstance(advanced, dict):
            raise MeterError("advancedMeterGroupByFilters", "must be an object: group -> filter")
    window = params.get("windowSize") or None
    return MeterQuery(
        start=_time(request, "from"),
        end=_time(request, "to"),
        window=window.upper() if window else None,
        zone=params.get("windowTimeZone") or "UTC",
        subjects=tuple(params.getlist("subject")),
        group_by=tuple(params.getlist("groupBy")),
        filters=_filters(request),
        advanced=advanced,
    )


def _query_of_body(payload: object) -> MeterQuery:
    if not isinstance(payload, dict):
        raise MeterError("", "the body is OpenMeter's MeterQueryRequest: a JSON object")

    def when(name: str) -> datetime | None:
        value = payload.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise MeterError(name, "must be an RFC 3339 date-time")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MeterError(name, f"{value[:40]!r} is not an RFC 3339 date-time") from exc
        if moment.tzinfo is None:
            raise MeterError(name, "needs a time zone offset")
        return moment

    def strings(name: str) -> tuple[str, ...]:
        value = payload.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MeterError(name, "must be a list of strings")
        return tuple(value)

    filters = payload.get("filterGroupBy") or {}
    if not isinstance(filters, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in filters.items()
    ):
        raise MeterError("filterGroupBy", "must be an object: group -> value")
    window = payload.get("windowSize")
    zone = payload.get("windowTimeZone") or "UTC"
    if window is not None and not isinstance(window, str):
        raise MeterError("windowSize", "must be MINUTE, HOUR, DAY or MONTH")
    if not isinstance(zone, str):
        raise MeterError("windowTimeZone", "must be an IANA time zone name")
    return MeterQuery(
        start=when("from"),
        end=when("to"),
        window=window.upper() if window else None,
        zone=zone,
        subjects=strings("subject"),
        group_by=strings("groupBy"),
        filters={key: (value,) for key, value in filters.items()},
    )


def csv_body(rows: list[Row], groups: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["window_start", "window_end", "subject", *groups, "value"])
    for row in rows:
        shown = row.as_openmeter()
        writer.writerow(
            [
                shown["windowStart"],
                shown["windowEnd"],
                row.subject or "",
                *(row.groups.get(key) or "" for key in groups),
                format(row.value, "f") if not isinstance(row.value, float) else row.value,
            ]
        )
    return out.getvalue()


class MeterApi:
    def __init__(self, ctx: ServiceContext, meters: BillableMeters) -> None:
        self.ctx = ctx
        self.meters = meters
        self.registry = meters.registry

    async def scope(self, request: Request) -> Scope | Response:
        """Whose events the caller may read, or the refusal (401/403, problem+json)."""
        auth = read_auth(self.ctx)
        caller = await auth.caller(request)
        if isinstance(caller, Response):
            return caller
        if caller.kind == "other_key":
            return auth.refuse(
                caller, "meters", 403, f"key {caller.key_id} cannot read: reading needs a read key"
            )
        if not caller.account_id:
            return Scope()
        vis = caller.visibility(caller.account_id, "statement")
        if vis is None or not vis.anything:
            return auth.refuse(
                caller,
                "meters",
                403,
                f"your roles in account {caller.account_id} do not allow reading usage",
            )
        condition, params = vis.sql_condition()
        return Scope(caller.account_id, condition, params)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    def guarded(self, handler: Callable[[Request, Scope], Awaitable[Response]]) -> Handler:
        async def run(request: Request) -> Response:
            scope = await self.scope(request)
            if isinstance(scope, Response):
                return scope
            try:
                return await handler(request, scope)
            except MeterhouseError as exc:
                return _failure(exc)

        return run

    # -- meters ------------------------------------------------------------------------

    async def list_meters(self, request: Request, _: Scope) -> Response:
        meters = [m.as_openmeter() for m in await self._run(self.registry.list)]
        order_by = request.query_params.get("orderBy", "key")
        field = {"key": "slug", "name": "name", "aggregation": "aggregation"}.get(
            order_by, order_by
        )
        if field not in ("slug", "name", "aggregation", "createdAt", "updatedAt"):
            raise MeterError("orderBy", "must be key, name, aggregation, createdAt or updatedAt")
        meters.sort(key=lambda m: (str(m.get(field, "")), m["slug"]))
        if request.query_params.get("order", "ASC").upper() == "DESC":
            meters.reverse()
        page, size = _int(request, "page", 1, 1, 10**6), _int(request, "pageSize", 100, 1, 1000)
        return JSONResponse(meters[(page - 1) * size : page * size])

    async def get_meter(self, request: Request, _: Scope) -> Response:
        meter = await self._run(self.registry.get, request.path_params["meter"])
        return JSONResponse(meter.as_openmeter())

    async def create_meter(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "meters")
        if refused is not None:
            return refused
        try:
            payload = await json_body(request)
        except ValueError:
            return problem(400, "Bad Request", "the body must be OpenMeter's MeterCreate JSON")
        try:
            meter = parse(payload)
            problem_text = await self._run(value_problem, self.ctx.store, meter)
            if problem_text is not None:
                raise MeterError("valueProperty", problem_text)
            actor = request.headers.get("x-meterhouse-actor", "api:admin")[:128]
            stored = await self._run(self._add, meter, actor)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse(stored.as_openmeter(), status_code=201)

    def _add(self, meter: Any, actor: str) -> Any:
        stored = self.registry.add(meter, meter_id=new_ulid(), actor=actor)
        self.meters.refresh()  # ingest bills the new meter from the next event on
        return stored

    async def update_meter(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "meters")
        if refused is not None:
            return refused
        try:
            payload = await json_body(request)
        except ValueError:
            return problem(400, "Bad Request", "the body must be OpenMeter's MeterUpdate JSON")
        if not isinstance(payload, dict):
            return problem(400, "Bad Request", "the body must be OpenMeter's MeterUpdate JSON")
        actor = request.headers.get("x-meterhouse-actor", "api:admin")[:128]
        try:
            updated = await self._run(self._update, request.path_params["meter"], payload, actor)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse(updated.as_openmeter())

    def _update(self, slug: str, payload: dict[str, object], actor: str) -> Any:
        updated = self.registry.update(slug, payload, actor=actor)
        self.meters.refresh()
        return updated

    async def delete_meter(self, request: Request) -> Response:
        refused = await authorize_admin(self.ctx, request, "meters")
        if refused is not None:
            return refused
        actor = request.headers.get("x-meterhouse-actor", "api:admin")[:128]
        try:
            await self._run(self._remove, request.path_params["meter"], actor)
        except MeterhouseError as exc:
            return _failure(exc)
        return Response(status_code=204)

    def _remove(self, slug: str, actor: str) -> None:
        self.registry.remove(slug, actor=actor)
        self.meters.refresh()

    # -- queries -----------------------------------------------------------------------

    async def query(self, request: Request, scope: Scope) -> Response:
        if request.method == "POST":
            try:
                payload = await json_body(request)
            except ValueError:
                return problem(400, "Bad Request", "the body must be a MeterQueryRequest")
            wanted = _query_of_body(payload)
        else:
            wanted = _query_of(request)
        meter = await self._run(self.registry.get, request.path_params["meter"])
        now = now_utc()
        rows: list[Row] = await self._run(run_query, self.ctx.store, meter, scope, wanted, now)
        groups = [key for key in wanted.group_by if key != "subject"]
        if "text/csv" in request.headers.get("accept", ""):
            return Response(csv_body(rows, groups), media_type="text/csv; charset=utf-8")
        body: dict[str, Any] = {"data": [row.as_openmeter() for row in rows]}
        body["from"] = _shown(wanted.start)
        body["to"] = _shown(wanted.end or now)
        if wanted.window:
            body["windowSize"] = wanted.window
        return JSONResponse({k: v for k, v in body.items() if v is not None})

    async def meter_subjects(self, request: Request, scope: Scope) -> Response:
        meter = await self._run(self.registry.get, request.path_params["meter"])
        start, end = _time(request, "from"), _time(request, "to")
        found = await self._run(subjects, self.ctx.store, meter, scope, start, end)
        return JSONResponse(found)

    async def group_by_values(self, request: Request, scope: Scope) -> Response:
        meter = await self._run(self.registry.get, request.path_params["meter"])
        start = _time(request, "from") or now_utc() - timedelta(hours=24)
        end = _time(request, "to")
        key = request.path_params["key"]
        found = await self._run(group_values, self.ctx.store, meter, key, scope, start, end)
        return JSONResponse(found)

    async def list_subjects(self, _: Request, scope: Scope) -> Response:
        return JSONResponse(await self._run(list_subjects, self.ctx.store, scope))

    async def get_subject(self, request: Request, scope: Scope) -> Response:
        key = request.path_params["subject"]
        found = await self._run(list_subjects, self.ctx.store, scope, key)
        if not found:
            return problem(404, "Not Found", f"no events of subject {key!r} that you may read")
        return JSONResponse(found[0])

    async def list_events(self, request: Request, scope: Scope) -> Response:
        if request.query_params.getlist("customerId"):
            raise MeterError("customerId", "meterhouse has no customers: filter by subject")
        wanted = EventFilter(
            start=_time(request, "from") or now_utc() - timedelta(hours=72),
            end=_time(request, "to"),
            ingested_from=_time(request, "ingestedAtFrom"),
            ingested_to=_time(request, "ingestedAtTo"),
            event_id=request.query_params.get("id"),
            subject=request.query_params.get("subject"),
            limit=_int(request, "limit", MAX_EVENTS, 1, MAX_EVENTS),
        )
        return JSONResponse(await self._run(list_events, self.ctx.store, scope, wanted))

    def routes(self) -> list[Route]:
        g = self.guarded
        base = "/api/v1/meters/{meter}"
        return [
            Route("/api/v1/meters", g(self.list_meters), methods=["GET"]),
            Route("/api/v1/meters", self.create_meter, methods=["POST"]),
            Route(base, g(self.get_meter), methods=["GET"]),
            Route(base, self.update_meter, methods=["PUT"]),
            Route(base, self.delete_meter, methods=["DELETE"]),
            Route(f"{base}/query", g(self.query), methods=["GET", "POST"]),
            Route(f"{base}/subjects", g(self.meter_subjects), methods=["GET"]),
            Route(f"{base}/group-by/{{key}}/values", g(self.group_by_values), methods=["GET"]),
            Route("/api/v1/subjects", g(self.list_subjects), methods=["GET"]),
            Route("/api/v1/subjects/{subject}", g(self.get_subject), methods=["GET"]),
            Route("/api/v1/events", g(self.list_events), methods=["GET"]),
        ]


def _shown(moment: datetime | None) -> str | None:
    from meterhouse.meters.query import rfc3339

    return rfc3339(moment) if moment is not None else None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise MeterError(name, "must be an integer") from exc
    if not low <= value <= high:
        raise MeterError(name, f"must be between {low} and {high}")
    return value


def service_meters(ctx: ServiceContext) -> BillableMeters:
    """The meters of this service (one registry per context, shared by ingest's billing
    and the API), made on first use: the meters file is read then, and a mistake in it
    stops the start, naming the meter and field."""

    def make() -> BillableMeters:
        file_meters = load_file(ctx.settings.meters_file)
        rollups = not ctx.settings.clickhouse_cluster
        return BillableMeters(Registry(ctx.store, file_meters, rollups=rollups))

    return once_per_context(ctx, "_meterhouse_meters", BillableMeters, make)


def install_meters(ctx: ServiceContext) -> None:
    """Service hook: OpenMeter's meter API, and every meter's rollup made where missing
    (before the spool's drainer starts: no insert is in flight)."""
    meters = service_meters(ctx)
    meters.registry.ensure_rollups()
    ctx.routes.extend(MeterApi(ctx, meters).routes())
