"""Who is reading, and what they may see: the one gate of every read API of the service.

Three kinds of bearer token open the read APIs (balance, statement, jobs, runs, events,
users):

* the service admin token (MH_ADMIN_TOKEN): every account;
* a personal read key (``meterhouse keys create --purpose read --user U --account A``):
  what U's role bindings in A allow (meterhouse/access/roles.py), nothing of any other
  account;
* an admin key (``--purpose admin``): every account, or only its account when it has one.

Ingest keys read nothing. A key is looked up on every request (no cache), so a revocation,
an expiry, a removed user or a revoked role takes effect on the next request. Secrets are
compared as SHA-256 hashes with hmac.compare_digest. Failed authentications are limited
per client IP by the same token bucket as the ingest endpoints (MH_INGEST_AUTH_FAILURE_*):
an IP whose bucket is empty gets 429 before its token is looked at.

Answers: 401 no or bad token; 429 too many failures; 404 the account is not the caller's
(the same answer whether it exists or not, so account ids cannot be probed); 403 the
caller's own account, but its roles do not allow this read. The SQL endpoint is for the
admin token only (see :func:`authorize_sql`).
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterhouse.access.key_auth import AuthBrake, key_id_of
from meterhouse.access.keys import check_token, get_stored_key, parse_token
from meterhouse.access.statement_view import ScopeRefused, redact, resolve_scope
from meterhouse.access.tenants import get_project, now_utc
from meterhouse.access.users import Binding, get_user, list_bindings
from meterhouse.access.visibility import Visibility, visibility_of
from meterhouse.logs import get_logger
from meterhouse.service.context import ServiceContext, bearer_token, once_per_context
from meterhouse.store.base import Store

log = get_logger(__name__)

CallerKind = Literal["admin_token", "admin_key", "read_key", "other_key"]
_CONTEXT_ATTRIBUTE: Final = "_meterhouse_read_auth"
_DETAIL: Final = {
    "missing": "send Authorization: Bearer <read key>; `meterhouse keys create --purpose read "
    "--user U --account A` makes one",
    "malformed": "the bearer token is not a meterhouse key (mh_<key id>_<secret>)",
    "unknown": "unknown API key",
    "bad_secret": "unknown API key",
    "revoked": "this API key was revoked",
    "expired": "this API key has expired",
    "no_user": "this key's user was removed from its account",
}


def problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    """RFC 9457 problem+json, as meterhouse.service.app.problem, with headers."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    key_id: str = ""
    account_id: str = ""  # the key's account; '' = every account (admin token, admin key)
    user_id: str = ""
    bindings: tuple[Binding, ...] = ()

    @property
    def label(self) -> str:
        """How logs and the audit log name the caller (never the secret)."""
        return "admin-token" if self.kind == "admin_token" else f"key:{self.key_id}"

    def visibility(self, account_id: str, action: str) -> Visibility | None:
        """What the caller may see of ``account_id``; None when the account is not its own."""
        if self.account_id and account_id != self.account_id:
            return None
        if self.kind in ("admin_token", "admin_key"):
            return Visibility.everything(account_id)
        if self.kind != "read_key":
            return Visibility(account_id, False)
        return visibility_of(self.bindings, account_id, action)


class ReadAuth:
    """Authentication and authorisation of the read APIs of one service."""

    def __init__(
        self,
        store: Store,
        admin_token: str,
        registry: CollectorRegistry,
        *,
        burst: int,
        per_second: float,
    ) -> None:
        self.store = store
        self.admin_token = admin_token
        self.limiter = AuthBrake(burst, per_second)
        self.failures = Counter(
            "meterhouse_read_auth_failures",
            "Failed authentications on the read APIs and /api/v1/sql, by reason (missing, "
            "malformed, unknown, bad_secret, revoked, expired, no_user, rate_limited).",
            ["reason"],
            registry=registry,
        )
        self.refused = Counter(
            "meterhouse_read_refused",
            "Authenticated read requests refused, by endpoint and status (403 or 404).",
            ["endpoint", "status"],
            registry=registry,
        )

    def authenticate(self, token: str, now: datetime) -> tuple[Caller | None, str | None]:
        """The caller a token proves, or why it proves none (blocking: reads the store)."""
        if not token:
            return None, "missing"
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Caller("admin_token"), None
        parsed = parse_token(token)
        if parsed is None:
            return None, "malformed"
        key_id, secret = parsed
        key, failure = check_token(get_stored_key(self.store, key_id), secret, now)
        if key is None:
            return None, failure or "unknown"
        if key.purpose == "admin":
            return Caller("admin_key", key.key_id, key.account_id), None
        if key.purpose != "read":
            return Caller("other_key", key.key_id, key.account_id or "-"), None
        if key.user_id and get_user(self.store, key.account_id, key.user_id) is None:
            return None, "no_user"
        bindings = (
            tuple(list_bindings(self.store, key.account_id, key.user_id)) if key.user_id else ()
        )
        return Caller("read_key", key.key_id, key.account_id or "-", key.user_id, bindings), None

    async def caller(self, request: Request) -> Caller | Response:
        client = request.client.host if request.client else "unknown"
        token = bearer_token(request)
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Caller("admin_token")  # no store read: never locked out by others' guesses
        key_id = key_id_of(token)
        limited = self.limited(client, key_id)
        if limited is not None:
            return limited
        found, failure = await asyncio.to_thread(self.authenticate, token, now_utc())
        if found is None:
            reason = failure or "unknown"
            if reason != "no_user":  # a real key of a removed user is no guess
                self.limiter.failed(client, key_id)
            self.failures.labels(reason).inc()
            log.info("read authentication failed", reason=reason, client=client, key=key_id)
            return problem(
                401,
                "Unauthorized",
                _DETAIL[reason],
                **{"WWW-Authenticate": 'Bearer realm="meterhouse read"'},
            )
        if found.key_id:
            self.limiter.succeeded(found.key_id)
        return found

    def limited(self, client: str, key_id: str | None) -> Response | None:
        """The 429 for an address (and key id) that failed too often, counted; else None."""
        wait = self.limiter.retry_after(client, key_id)
        if wait is None:
            return None
        self.failures.labels("rate_limited").inc()
        return problem(
            429,
            "Too Many Requests",
            f"too many failed authentications from {client}; retry in {wait} s",
            **{"Retry-After": str(wait)},
        )

    async def access(
        self, request: Request, account_id: str, action: str, endpoint: str
    ) -> tuple[Caller, Visibility] | Response:
        """The caller and what it may see of the account for this action, or the refusal."""
        found = await self.caller(request)
        if isinstance(found, Response):
            return found
        if found.kind == "other_key":
            return self.refuse(
                found, endpoint, 403, f"key {found.key_id} cannot read: reading needs a read key"
            )
        vis = found.visibility(account_id, action)
        if vis is None:
            return self.refuse(found, endpoint, 404, f"no account {account_id}")
        if not vis.anything:
            return self.refuse(
                found,
                endpoint,
                403,
                f"your roles in account {account_id} do not allow reading {endpoint}",
            )
        return found, vis

    def refuse(self, caller: Caller, endpoint: str, status: int, detail: str) -> Response:
        self.refused.labels(endpoint, str(status)).inc()
        log.info("read refused", caller=caller.label, endpoint=endpoint, status=status)
        return problem(status, "Not Found" if status == 404 else "Forbidden", detail)


def read_auth(ctx: ServiceContext) -> ReadAuth:
    """The ReadAuth of this service context, made on first use (one per context, so its
    metrics are registered once on the context's registry)."""

    def make() -> ReadAuth:
        return ReadAuth(
            ctx.store,
            ctx.admin_token,
            ctx.registry,
            burst=ctx.settings.ingest_auth_failure_burst,
            per_second=ctx.settings.ingest_auth_failure_per_second,
        )

    return once_per_context(ctx, _CONTEXT_ATTRIBUTE, ReadAuth, make)


async def authorize_read(
    ctx: ServiceContext, request: Request, account_id: str, action: str, endpoint: str
) -> Visibility | Response:
    """What the request may see of ``account_id`` for ``action``, or the refusal to send."""
    outcome = await read_auth(ctx).access(request, account_id, action, endpoint)
    return outcome if isinstance(outcome, Response) else outcome[1]


async def _other_than_admin(
    ctx: ServiceContext, request: Request
) -> tuple[ReadAuth, Caller] | Response | None:
    """None for the admin token, the refusal of a failed authentication, or the caller
    (authenticated, but not the admin) for the endpoint to refuse in its own words."""
    auth = read_auth(ctx)
    found = await auth.caller(request)
    if isinstance(found, Response):
        return found
    return None if found.kind == "admin_token" else (auth, found)


async def authorize_sql(ctx: ServiceContext, request: Request) -> Response | None:
    """None for the admin token. Keys get 403: ad-hoc SQL runs as meterhouse's own
    ClickHouse user, which sees every tenant. In server mode tenants query ClickHouse with
    their own credentials (`meterhouse users sync-clickhouse`); the embedded engine has no
    users to switch to, so there SQL is for the service admin only."""
    outcome = await _other_than_admin(ctx, request)
    if not isinstance(outcome, tuple):
        return outcome
    auth, found = outcome
    return auth.refuse(
        found,
        "sql",
        403,
        "the SQL endpoint is for the service admin token only: it runs as meterhouse's own "
        "ClickHouse user. With a ClickHouse server, query it with your own per-tenant "
        "credentials (made by `meterhouse users sync-clickhouse`); the embedded engine has "
        "no per-user credentials.",
    )


async def authorize_admin(ctx: ServiceContext, request: Request, endpoint: str) -> Response | None:
    """None for the admin token; else the refusal (401, or 429 after too many failures
    from the address), logged without the token and counted, as on every read API."""
    outcome = await _other_than_admin(ctx, request)
    if not isinstance(outcome, tuple):
        return outcome
    auth, found = outcome
    auth.refused.labels(endpoint, "401").inc()
    log.info("admin endpoint refused a key", caller=found.label, endpoint=endpoint)
    return problem(
        401,
        "Unauthorized",
        f"{endpoint} administration needs the service admin token, not a key",
        **{"WWW-Authenticate": 'Bearer realm="meterhouse admin"'},
    )


async def metrics_scope(ctx: ServiceContext, request: Request) -> bool | Response:
    """For /metrics: True when the scrape may see per-account series (the metrics token or
    the admin token), False for an anonymous scrape (service-wide series only), or the
    refusal of a wrong token (401, 429 after too many), counted and logged like any."""
    token = bearer_token(request)
    if not token:
        return False
    offered = token.encode()
    for secret in (ctx.settings.metrics_token.get_secret_value(), ctx.admin_token):
        if secret and hmac.compare_digest(offered, secret.encode()):
            return True  # checked before any limit: others' guesses never lock it out
    auth = read_auth(ctx)
    client = request.client.host if request.client else "unknown"
    limited = auth.limited(client, None)
    if limited is not None:
        return limited
    auth.limiter.failed(client, None)
    auth.failures.labels("bad_metrics_token").inc()
    log.info("metrics authentication failed", client=client)
    return problem(
        401,
        "Unauthorized",
        "not the metrics token (MH_METRICS_TOKEN); scrape without Authorization for the "
        "service-wide series only",
        **{"WWW-Authenticate": 'Bearer realm="meterhouse metrics"'},
    )


# -- the ledger's read API (meterhouse/ledger/api.py) -----------------------------------


@dataclass(frozen=True)
class StatementAccess:
    """The statement a caller may have: its scope, and whether only the scoped JSON view."""

    team: str
    project: str
    visibility: Visibility
    redacted: bool

    def body(self, statement: dict[str, Any]) -> dict[str, Any]:
        return redact(statement, self.visibility) if self.redacted else statement


async def authorize_statement(
    ctx: ServiceContext, request: Request, account_id: str
) -> StatementAccess | Response:
    """The scope of the statement the request may read, or the refusal to send.

    Account-wide callers get what they ask for. Team- or project-scoped callers get a scope
    their bindings cover, as JSON without account-level figures (statement_view.py).
    """
    auth = read_auth(ctx)
    outcome = await auth.access(request, account_id, "statement", "statement")
    if isinstance(outcome, Response):
        return outcome
    caller, vis = outcome
    team = request.query_params.get("team", "")
    project = request.query_params.get("project", "")

    def team_of(project_id: str) -> str | None:
        found = get_project(ctx.store, account_id, project_id)
        return str(found["team_id"]) if found else None

    try:
        scope = await asyncio.to_thread(resolve_scope, vis, team, project, team_of)
    except ScopeRefused as refused:
        if refused.status == 403:
            return auth.refuse(caller, "statement", 403, refused.detail)
        return problem(refused.status, "Bad Request", refused.detail)
    if scope.redacted and request.query_params.get("format", "json") != "json":
        return auth.refuse(
            caller,
            "statement",
            403,
            f"your access covers {vis.describe()}: rendered statements show account "
            "balances, so you get format=json (your usage only)",
        )
    return StatementAccess(scope.team, scope.project, vis, scope.redacted)
