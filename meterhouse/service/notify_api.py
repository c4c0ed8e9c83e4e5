"""HTTP side of notifications: Alertmanager's receiver, and channels for account owners.

    POST   /api/v1/alerts/webhook            Alertmanager's webhook (Bearer MH_ALERTS_WEBHOOK_TOKEN)
    GET    /api/v1/accounts/{account}/notification-channels
    POST   /api/v1/accounts/{account}/notification-channels
           {"type", "target", "min_severity", "kinds", "description"} -> 201 + the secret, once
    DELETE /api/v1/accounts/{account}/notification-channels/{channel}
    POST   /api/v1/accounts/{account}/notification-channels/{channel}/test
    GET    /api/v1/accounts/{account}/notifications?limit=N&alert=NAME   the delivery log

The account paths take the admin token, an admin key, or a read key whose user is an
account-wide owner or admin (others get 403; another account's id 404, as for the read
APIs). ``_operators`` in place of an account is the operators' channels: admin token or an
account-less admin key only. The receiver answers at once; deliveries go out in the
background (meterhouse/notify/deliveries.py).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from typing import Any, Final

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from meterhouse.access.tenants import TenantError
from meterhouse.errors import MeterhouseError, StoreError
from meterhouse.jobs.stuck import StuckPolicy
from meterhouse.jsonable import to_jsonable
from meterhouse.logs import get_logger
from meterhouse.notify import channels as ch
from meterhouse.notify.billing_alerts import unpaid_invoice_alerts
from meterhouse.notify.deliveries import Dispatcher, channel_health, delivery_log, test_channel
from meterhouse.notify.errors import NotifyError
from meterhouse.notify.job_alerts import failed_job_alerts, stuck_job_alerts
from meterhouse.notify.pusher import AlertPusher
from meterhouse.notify.receiver import MAX_BODY_BYTES, parse_notification, plan_deliveries
from meterhouse.service.auth import Caller, problem, read_auth
from meterhouse.service.context import ServiceContext, bearer_token

log = get_logger(__name__)

OPERATORS_PATH: Final = "_operators"
WEBHOOK_PATH: Final = "/api/v1/alerts/webhook"


def _failure(exc: MeterhouseError) -> Response:
    if isinstance(exc, StoreError):
        return problem(503, "Store unavailable", str(exc))
    return problem(400, "Bad Request", str(exc))


def channels_with_health(store: Any, account_id: str) -> list[dict[str, Any]]:
    health = channel_health(store, account_id)
    listed = []
    for channel in ch.list_channels(store, account_id):
        seen = health.get(channel.channel_id, {})
        listed.append(
            {
                **channel.public(),
                "health": {"sent": "ok", "retrying": "failing", "dead": "dead"}.get(
                    str(seen.get("last_outcome", "")), "untried"
                ),
                "last_attempt": seen.get("last_attempt"),
                "last_error": seen.get("last_error", ""),
            }
        )
    return listed


def create_from_payload(
    store: Any, settings: Any, account_id: str, payload: Any, actor: str, acting_user: str | None
) -> tuple[ch.Channel, str]:
    if not isinstance(payload, dict):
        raise NotifyError("body must be a JSON object")
    kinds = payload.get("kinds") or []
    fields = [payload.get(k, "") for k in ("type", "target", "min_severity", "description")]
    if not all(isinstance(f, str) for f in fields) or not isinstance(kinds, list):
        raise NotifyError("type, target, min_severity, description are strings; kinds a list")
    kind, target, severity, description = (str(f) for f in fields)
    return ch.add_channel(
        store,
        account_id,
        kind,
        target,
        secret_key=settings.notify_secret_key.get_secret_value(),
        min_severity=severity or "info",
        kinds=tuple(str(k) for k in kinds),
        description=description,
        actor=actor,
        acting_user=acting_user,
    )


def routes(ctx: ServiceContext, dispatcher: Dispatcher) -> list[BaseRoute]:
    store, settings = ctx.store, ctx.settings
    token = settings.alerts_webhook_token.get_secret_value()

    async def webhook(request: Request) -> Response:
        if not token:
            return problem(503, "Not configured", "set MH_ALERTS_WEBHOOK_TOKEN to receive alerts")
        if not hmac.compare_digest(bearer_token(request).encode(), token.encode()):
            return problem(401, "Unauthorized", "send Authorization: Bearer <alerts token>")
        body = b""
        async for chunk in request.stream():  # bounded: never more than the limit in memory
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return problem(
                    413, "Too Large", f"notifications are at most {MAX_BODY_BYTES} bytes"
                )
        try:
            alerts = parse_notification(body)
            planned = await asyncio.to_thread(plan_deliveries, store, alerts)
        except MeterhouseError as exc:
            return _failure(exc)
        dispatcher.submit(planned)
        log.info("alert notification received", alerts=len(alerts), deliveries=len(planned))
        return JSONResponse({"alerts": len(alerts), "deliveries": len(planned)})

    async def caller_for(request: Request, account: str) -> tuple[Caller, str] | Response:
        """The caller and the account id it manages ('' = operators), or the refusal."""
        auth = read_auth(ctx)
        if account == OPERATORS_PATH:
            found = await auth.caller(request)
            if isinstance(found, Response):
                return found
            if found.kind == "admin_token" or (found.kind == "admin_key" and not found.account_id):
                return found, ch.OPERATORS
            return auth.refuse(found, "notifications", 403, "operators' channels need an admin")
        outcome = await auth.access(request, account, "users", "notifications")
        return outcome if isinstance(outcome, Response) else (outcome[0], account)

    def acting(caller: Caller) -> str | None:
        return caller.user_id or caller.key_id if caller.kind == "read_key" else None

    async def list_or_add(request: Request) -> Response:
        found = await caller_for(request, request.path_params["account"])
        if isinstance(found, Response):
            return found
        caller, account = found
        try:
            if request.method == "GET":
                listed = await asyncio.to_thread(channels_with_health, store, account)
                return JSONResponse({"account": account, "channels": to_jsonable(listed)})
            try:
                payload = await request.json()
            except ValueError:
                payload = None
            channel, secret = await asyncio.to_thread(
                create_from_payload,
                store,
                settings,
                account,
                payload,
                caller.label,
                acting(caller),
            )
        except (MeterhouseError, TenantError) as exc:
            return _failure(exc)
        return JSONResponse({"channel": channel.public(), "secret": secret}, status_code=201)

    async def remove(request: Request) -> Response:
        found = await caller_for(request, request.path_params["account"])
        if isinstance(found, Response):
            return found
        caller, account = found
        try:
            channel = await asyncio.to_thread(
                ch.remove_channel,
                store,
                account,
                request.path_params["channel"],
                actor=caller.label,
                acting_user=acting(caller),
            )
        except (MeterhouseError, TenantError) as exc:
            return _failure(exc)
        return JSONResponse({"channel": channel.public(), "removed": True})

    async def test(request: Request) -> Response:
        found = await caller_for(request, request.path_params["account"])
        if isinstance(found, Response):
            return found
        caller, account = found
        try:
            await asyncio.to_thread(ch.authorize, store, account, caller.label, acting(caller))
            channel = await asyncio.to_thread(
                ch.get_channel, store, account, request.path_params["channel"]
            )
            outcome = await asyncio.to_thread(test_channel, store, settings, channel)
        except (MeterhouseError, TenantError) as exc:
            return _failure(exc)
        return JSONResponse(
            {
                "channel": channel.public(),
                "ok": outcome.ok,
                "response_code": outcome.code,
                "error": outcome.error,
            }
        )

    async def notifications(request: Request) -> Response:
        found = await caller_for(request, request.path_params["account"])
        if isinstance(found, Response):
            return found
        _, account = found
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return problem(400, "Bad Request", "limit must be a whole number")
        if not 1 <= limit <= 10_000:
            return problem(400, "Bad Request", "limit must be between 1 and 10000")
        alert = request.query_params.get("alert", "")[:200]
        try:
            rows = await asyncio.to_thread(delivery_log, store, account, limit=limit, alert=alert)
        except MeterhouseError as exc:
            return _failure(exc)
        return JSONResponse({"account": account, "notifications": to_jsonable(rows)})

    base = "/api/v1/accounts/{account}/notification-channels"
    return [
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route(base, list_or_add, methods=["GET", "POST"]),
        Route(base + "/{channel}", remove, methods=["DELETE"]),
        Route(base + "/{channel}/test", test, methods=["POST"]),
        Route("/api/v1/accounts/{account}/notifications", notifications, methods=["GET"]),
    ]


def install_notify(ctx: ServiceContext) -> None:
    """Service hook: the receiver and channel routes, the dispatcher, the alert pusher."""
    attempts = Counter(
        "meterhouse_notification_attempts",
        "Delivery attempts of alert notifications to channels, by channel type and outcome "
        "(sent, retrying, dead = given up, failed = a test send).",
        ["channel_type", "outcome"],
        registry=ctx.registry,
    )
    for kind in ch.TYPES:  # every series exists from the start, so rules see it rise
        for outcome in ("sent", "retrying", "dead"):
            attempts.labels(kind, outcome)
    dispatcher = Dispatcher(
        ctx.store,
        ctx.settings,
        on_attempt=lambda kind, outcome: attempts.labels(kind, outcome).inc(),
    )
    ctx.routes.extend(routes(ctx, dispatcher))

    def start() -> None:
        dispatcher.start()
        try:
            resumed = dispatcher.resume()
        except MeterhouseError as exc:
            log.warning("pending notification retries not resumed", error=str(exc))
        else:
            if resumed:
                log.info("notification retries resumed", deliveries=resumed)

    ctx.on_startup.append(start)
    ctx.on_shutdown.append(dispatcher.stop)
    if ctx.settings.alertmanager_url:
        store, policy = ctx.store, StuckPolicy.from_settings(ctx.settings)
        pusher = AlertPusher(
            ctx.settings,
            [
                lambda now: failed_job_alerts(store, now),
                lambda now: stuck_job_alerts(store, policy, now),
                lambda now: unpaid_invoice_alerts(store, now),
            ],
        )
        stopping = threading.Event()

        def loop() -> None:
            while not stopping.is_set():
                pusher.push_once()
                stopping.wait(pusher.interval)

        thread = threading.Thread(target=loop, name="job-alerts", daemon=True)
        ctx.on_startup.append(thread.start)
        ctx.on_shutdown.append(stopping.set)
