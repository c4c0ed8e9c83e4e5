"""The billing sync's part of `meterhouse run` (a service hook, see meterhouse.service).

Always: the Stripe webhook route and the billing metrics. With MH_STRIPE_API_KEY set:
the scheduled passes, started with the server and stopped before it ends. Without a key:
one log line saying billing sync is off, and no job that would fail in a loop.
"""

from __future__ import annotations

from starlette.routing import Route

from billing_sync.client import StripeConfigError, make_client
from billing_sync.metrics import BillingMetrics
from billing_sync.scheduler import BillingScheduler
from billing_sync.source import StripeSource
from billing_sync.sync import BillingSync
from billing_sync.webhook import WEBHOOK_PATH, WebhookReceiver
from meterhouse.logs import get_logger
from meterhouse.service.context import ServiceContext

log = get_logger(__name__)


def billing_hook(ctx: ServiceContext) -> None:
    settings = ctx.settings
    metrics = BillingMetrics(ctx.registry)
    metrics.enabled.set(0)
    try:
        source: StripeSource | None = StripeSource(make_client(settings), settings.stripe_api_base)
    except StripeConfigError:
        source = None
    scheduler: BillingScheduler | None = None
    if source is not None:
        sync = BillingSync(ctx.store, source, actor="service:billing-sync")
        scheduler = BillingScheduler(
            sync,
            metrics,
            interval_seconds=settings.billing_sync_interval_seconds,
            full_interval_seconds=settings.billing_full_sync_interval_seconds,
        )
        ctx.on_startup.append(scheduler.start)
        ctx.on_shutdown.append(scheduler.shutdown)
    else:
        log.info("billing sync off: MH_STRIPE_API_KEY is not set")
    secret = settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        log.info("stripe webhooks refused (503) until MH_STRIPE_WEBHOOK_SECRET is set")
    receiver = WebhookReceiver(
        ctx.store,
        secret=secret,
        tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        source=source,
        metrics=metrics,
        on_applied=scheduler.webhook_applied if scheduler is not None else None,
    )
    ctx.routes.append(Route(WEBHOOK_PATH, receiver.endpoint, methods=["POST"]))
