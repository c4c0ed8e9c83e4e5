"""The access suite's calls: a bearer token and a JSON body, through tests.support.asgi."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp

from tests.support.asgi import Answer
from tests.support.asgi import call as call_raw

__all__ = ["Answer", "call"]


def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    client: str = "127.0.0.1",
) -> Answer:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    raw = b""
    if body is not None:
        raw = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    return call_raw(app, method, path, headers=headers, body=raw, client=client)
