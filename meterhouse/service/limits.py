"""Every request is bounded before it is read: head size, body size, time, connections.

Two layers, so no endpoint can forget one:

* ``BoundedH11Protocol``, the HTTP/1.1 protocol of `meterhouse run` (h11, which refuses a
  request head over MH_HTTP_MAX_HEADER_BYTES while it parses; httptools has no such
  limit). It closes connections past MH_HTTP_MAX_CONNECTIONS (or past
  MH_HTTP_MAX_CONNECTIONS_PER_CLIENT from one address) at once, answers 408 and closes a
  connection whose request head is not in within MH_HTTP_HEADER_TIMEOUT_SECONDS, and one
  whose body is not in within MH_HTTP_BODY_TIMEOUT_SECONDS: idle and half-sent requests
  cannot pile up until the file descriptors run out.
* ``BodyLimit``, ASGI middleware around the whole app: a body larger than the limit is
  answered 413, by its Content-Length before it is read, or as soon as the bytes read
  while it streams pass the limit (chunked bodies included). Endpoints with a smaller
  limit read with ``read_limited``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, Final

import h11
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from meterhouse.logs import get_logger
from meterhouse.settings import Settings

log = get_logger(__name__)


def _raw_answer(status: str, text: str, *extra: str) -> bytes:
    """A whole HTTP/1.1 answer, for connections h11 is not in a state to answer on."""
    body = text.encode() + b"\n"
    head = [f"HTTP/1.1 {status}", "content-type: text/plain", "connection: close", *extra]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMEOUT_ANSWER: Final = _raw_answer(
    "408 Request Timeout", "the request was not sent in time; send it again"
)
_BUSY_ANSWER: Final = _raw_answer(
    "503 Service Unavailable", "too many open connections; retry later", "retry-after: 5"
)


class BodyTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes; send a smaller one")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLargeError) as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The body as JSON; ValueError for anything else, nesting too deep included (the
    standard decoder raises RecursionError there, which would otherwise be a 500)."""
    body = await request.body()
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise ValueError("the JSON body is nested too deeply") from exc


def _problem(status: int, title: str, detail: str) -> bytes:
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


class BodyLimit:
    """ASGI middleware: 413 for any request body over ``limit`` bytes, counted as it
    streams (the app sees a disconnect, and its own answer is replaced by the 413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(send)
                return
        state = {"read": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                if not state["started"]:
                    state["started"] = True
                    await self._too_large(send)
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = _problem(
            413,
            "Payload Too Large",
            f"the body is larger than {self.limit} bytes (MH_HTTP_MAX_BODY_BYTES); "
            "send a smaller one",
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with connection caps and head and body deadlines."""

    settings: Settings  # set by ``protocol_for``
    per_client: Counter[str]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for: object = None
        self._address = ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else "unknown"
        self.per_client[self._address] += 1
        too_many = len(self.connections) > self.settings.http_max_connections
        too_many_here = (
            self.per_client[self._address] > self.settings.http_max_connections_per_client
        )
        if too_many or too_many_here:
            log.warning(
                "connection refused: too many open",
                client=self._address,
                open=len(self.connections),
                from_client=self.per_client[self._address],
            )
            transport.write(_BUSY_ANSWER)
            transport.close()
            return
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.per_client[self._address] -= 1
        if self.per_client[self._address] <= 0:
            del self.per_client[self._address]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered (a 413, say) while the client still sends a body nobody will read:
            # close rather than read and discard the rest of it.
            self.transport.close()
        super().on_response_complete()
        self._watch()

    def _watch(self) -> None:
        """Arm the deadline of what the client owes now: a head (IDLE) or a body."""
        state = self.conn.their_state
        if self.transport.is_closing() or state not in (h11.IDLE, h11.SEND_BODY):
            self._cancel()
            return
        owed = (state, self.server_state.total_requests, id(self.cycle))
        if owed == self._deadline_for:
            return
        self._cancel()
        seconds = (
            self.settings.http_header_timeout_seconds
            if state is h11.IDLE
            else self.settings.http_body_timeout_seconds
        )
        self._deadline_for = owed
        self._deadline = self.loop.call_later(seconds, self._expired, state)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._deadline_for = None

    def _expired(self, state: type[h11._util.Sentinel]) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not state:
            return
        log.info(
            "closing a slow connection",
            client=self._address,
            waiting_for="headers" if state is h11.IDLE else "body",
        )
        responding = self.cycle is not None and self.cycle.response_started
        idle_between_requests = (
            state is h11.IDLE
            and self.server_state.total_requests
            and (self.cycle is not None and self.cycle.response_complete)
        )
        if not responding and not idle_between_requests:
            self.transport.write(_TIMEOUT_ANSWER)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedH11Protocol]:
    """The protocol class for one server (its settings and per-address counts)."""
    return type(
        "MeterhouseH11Protocol",
        (BoundedH11Protocol,),
        {"settings": settings, "per_client": Counter()},
    )
