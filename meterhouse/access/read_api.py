"""Read API of jobs, runs, job logs and users, each filtered to what the caller may see.

    GET  /api/v1/accounts/{account}/jobs[?kind=K][&include_paused=1]
    GET  /api/v1/accounts/{account}/jobs/{job}/runs[?status=S][&limit=N]
    GET  /api/v1/accounts/{account}/events?run=R | since=1h [&job=][&kind=][&level=]
                                           [&until=][&search=][&limit=][&stack_trace=1]
    GET  /api/v1/accounts/{account}/users
    POST /api/v1/access/keys   (admin token) create a read key while the service owns the
                               embedded store: {"account_id", "user_id", "expires_in",
                               "description", "actor"} -> 201 {"key", "token"}

Authentication and the 401/403/404/429 rules are meterhouse/service/auth.py's. Team- or
project-scoped callers see the jobs, runs and log lines of their teams and projects only:
jobs by their definition's team and project, logs by the line's own columns. The runs of a
job they may not see answer 404, as for a job that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from meterhouse.access import keys
from meterhouse.access.tenants import TenantError, now_utc
from meterhouse.access.users import list_bindings, list_users
from meterhouse.access.visibility import Visibility
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.jobs import events as ev
from meterhouse.jobs.errors import JobsError
from meterhouse.jobs.queries import active_jobs, job_runs
from meterhouse.jsonable import to_jsonable
from meterhouse.service.auth import authorize_read, problem, read_auth
from meterhouse.service.context import ServiceContext
from meterhouse.service.limits import json_body
from meterhouse.store.base import Store

_FROM_LOGS: Final = "FROM job_logs WHERE "
_TRUE: Final = ("1", "true", "yes")


def _failure(exc: MeterhouseError) -> Response:
    if isinstance(exc, StoreError):
        return problem(503, "Store unavailable", str(exc))
    return problem(400, "Bad Request", str(exc))


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name, "")
    try:
        return int(text) if text else default
    except ValueError:
        raise JobsError(f"{name} must be a whole number, got {text!r}") from None


def visible_jobs(store: Store, vis: Visibility) -> set[str]:
    """Ids of the jobs whose definition lies in what ``vis`` covers."""
    condition, params = vis.sql_condition()
    rows = store.query(
        f"SELECT job_id FROM jobs_current WHERE account_id = {{a:String}} AND {condition}",
        {"a": vis.account_id, **params},
    ).rows
    return {str(row[0]) for row in rows}


def jobs_of(store: Store, vis: Visibility, kind: str, include_paused: bool) -> list[dict[str, Any]]:
    rows = active_jobs(
        store, now_utc(), account_id=vis.account_id, kind=kind, include_paused=include_paused
    )
    if vis.whole_account:
        return rows
    allowed = visible_jobs(store, vis)
    return [row for row in rows if row["job"] in allowed]


def runs_of(
    store: Store, vis: Visibility, job_id: str, status: str, limit: int
) -> list[dict[str, Any]] | None:
    """The job's runs; None when the caller may not see the job."""
    if not vis.whole_account and job_id not in visible_jobs(store, vis):
        return None
    return job_runs(store, job_id, account_id=vis.account_id, status=status, limit=limit)


def log_query(request: Request, account_id: str) -> ev.LogQuery:
    params = request.query_params
    now = now_utc()
    since = params.get("since", "")
    until = params.get("until", "")
    return ev.LogQuery(
        run_id=params.get("run", ""),
        job_id=params.get("job", ""),
        account_id=account_id,
        kind=params.get("kind", ""),
        min_level=params.get("level", ""),
        since=ev.parse_since(since, now) if since else None,
        until=ev.parse_since(until, now) if until else None,
        search=params.get("search", ""),
        limit=_int(request, "limit", 100),
        with_stack_trace=params.get("stack_trace", "").lower() in _TRUE,
    )


def logs_of(store: Store, vis: Visibility, query: ev.LogQuery) -> list[dict[str, Any]]:
    """Log lines as `meterhouse events` finds them, within what ``vis`` covers."""
    sql, params = ev.log_search_sql(query)
    if not vis.whole_account:
        if sql.count(_FROM_LOGS) != 1:  # the jobs package changed its query: fail closed
            raise StoreError("cannot scope the log search; refusing to answer unfiltered")
        condition, extra = vis.sql_condition()
        sql = sql.replace(_FROM_LOGS, f"{_FROM_LOGS}{condition} AND ")
        params.update(extra)
    return list(store.query(sql, params).dicts())


def users_of(store: Store, account_id: str) -> list[dict[str, Any]]:
    users = list_users(store, account_id)
    bindings: dict[str, list[dict[str, str]]] = {}
    for binding in list_bindings(store, account_id):
        bindings.setdefault(binding.user_id, []).append(
            {"role": binding.role, "scope": binding.scope, "scope_id": binding.scope_id}
        )
    for user in users:
        user["bindings"] = bindings.get(user["user_id"], [])
    return users


def routes(ctx: ServiceContext) -> list[Route]:
    store = ctx.store

    async def jobs(request: Request) -> Response:
        account_id = request.path_params["account"]
        vis = await authorize_read(ctx, request, account_id, "jobs", "jobs")
        if isinstance(vis, Response):
            return vis
        include = request.query_params.get("include_paused", "").lower() in _TRUE
        kind = request.query_params.get("kind", "")
        try:
            found = await asyncio.to_thread(jobs_of, store, vis, kind, include)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse(
            {"account": account_id, "visible": vis.describe(), "jobs": to_jsonable(found)}
        )

    async def runs(request: Request) -> Response:
        account_id = request.path_params["account"]
        job_id = request.path_params["job"]
        auth = read_auth(ctx)
        outcome = await auth.access(request, account_id, "jobs", "runs")
        if isinstance(outcome, Response):
            return outcome
        caller, vis = outcome
        try:
            limit = _int(request, "limit", 20)
            status = request.query_params.get("status", "")
            found = await asyncio.to_thread(runs_of, store, vis, job_id, status, limit)
        except MeterhouseError as exc:
            return _failure(exc)
        if found is None:
            return auth.refuse(caller, "runs", 404, f"no job {job_id} in account {account_id}")
        return JSONResponse({"account": account_id, "job": job_id, "runs": to_jsonable(found)})

    async def events(request: Request) -> Response:
        account_id = request.path_params["account"]
        vis = await authorize_read(ctx, request, account_id, "events", "events")
        if isinstance(vis, Response):
            return vis
        try:
            query = log_query(request, account_id)
            found = await asyncio.to_thread(logs_of, store, vis, query)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse(
            {"account": account_id, "visible": vis.describe(), "events": to_jsonable(found)}
        )

    async def users(request: Request) -> Response:
        account_id = request.path_params["account"]
        vis = await authorize_read(ctx, request, account_id, "users", "users")
        if isinstance(vis, Response):
            return vis
        try:
            found = await asyncio.to_thread(users_of, store, account_id)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse({"account": account_id, "users": to_jsonable(found)})

    async def create_read_key(request: Request) -> Response:
        auth = read_auth(ctx)
        caller = await auth.caller(request)
        if isinstance(caller, Response):
            return caller
        if caller.kind != "admin_token":
            return auth.refuse(caller, "users", 403, "creating keys needs the admin token")
        try:
            payload = await json_body(request)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return problem(400, "Bad Request", "body must be a JSON object")
        try:
            key, token = await asyncio.to_thread(_create_read_key, store, payload)
        except (keys.ApiKeyError, TenantError) as exc:
            return problem(400, "Bad Request", str(exc))
        return JSONResponse({"key": to_jsonable(key.as_dict()), "token": token}, status_code=201)

    return [
        Route("/api/v1/accounts/{account}/jobs", jobs, methods=["GET"]),
        Route("/api/v1/accounts/{account}/jobs/{job}/runs", runs, methods=["GET"]),
        Route("/api/v1/accounts/{account}/events", events, methods=["GET"]),
        Route("/api/v1/accounts/{account}/users", users, methods=["GET"]),
        Route("/api/v1/access/keys", create_read_key, methods=["POST"]),
    ]


def _create_read_key(store: Store, payload: dict[str, Any]) -> tuple[keys.ApiKey, str]:
    def text(name: str) -> str:
        value = payload.get(name) or ""
        if not isinstance(value, str):
            raise keys.ApiKeyError(f"{name} must be a string")
        return value

    if not (text("account_id") and text("user_id")):
        raise keys.ApiKeyError("a read key needs account_id and user_id")
    expires = text("expires_in")
    return keys.create_key(
        store,
        purpose="read",
        source="",
        account_id=text("account_id"),
        user_id=text("user_id"),
        expires_in=keys.parse_duration(expires) if expires else None,
        description=text("description"),
        actor=text("actor") or "api:admin",
    )


def _paths(existing: list[BaseRoute]) -> set[str]:
    return {str(getattr(route, "path", "")) for route in existing}


def install_access(ctx: ServiceContext) -> None:
    """Service hook: the read routes that no other part registered already (a part that
    registers one of these paths first keeps it, and must use meterhouse.service.auth)."""
    taken = _paths(ctx.routes)
    ctx.routes.extend(route for route in routes(ctx) if route.path not in taken)
    read_auth(ctx)  # metrics registered at start, not on the first request
