"""What every part of `meterhouse run` is given (``ServiceContext``), and the answers and
headers all its routes share. Its own module so that the app and the parts that plug
into it (auth, ingest, ledger, ...) import it without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from meterhouse.settings import Settings
from meterhouse.store.base import Store

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else a reason that /readyz reports."""


@dataclass
class ServiceContext:
    settings: Settings
    store: Store
    registry: CollectorRegistry
    admin_token: str
    readiness_checks: list[ReadinessCheck] = field(default_factory=list)
    # Reported by /readyz without making it 503 (the service still takes requests).
    readiness_warnings: list[ReadinessCheck] = field(default_factory=list)
    routes: list[BaseRoute] = field(default_factory=list)
    # Background work (writers, schedulers) starts with the server and stops before it ends.
    on_startup: list[Callable[[], None]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)


_ONCE_LOCK: Final = threading.Lock()
_T = TypeVar("_T")


def once_per_context(
    ctx: ServiceContext, attribute: str, kind: type[_T], make: Callable[[], _T]
) -> _T:
    """The one ``kind`` object of this service context, made by ``make`` on first use (so
    it is shared by every part installed on the context, and registers its metrics once)."""
    found = vars(ctx).get(attribute)
    if isinstance(found, kind):
        return found
    with _ONCE_LOCK:
        found = vars(ctx).get(attribute)
        if not isinstance(found, kind):
            found = make()
            setattr(ctx, attribute, found)
        return found


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem+json answer."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
