"""The HTTP side of the local Stripe server: routes, list pagination, errors, faults.

Threaded, bound to 127.0.0.1 only, HTTP/1.1 keep-alive (the library reuses connections).
It counts requests (tests assert that an incremental pass costs requests in proportion to
the changes) and can be told to fail the next requests (429 with Retry-After, 500, ...).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

Obj = dict[str, Any]


class LocalStripe(Protocol):
    """What the HTTP side reads of the account it serves (local_stripe.LocalStripe).

    A protocol rather than an import: local_stripe.py starts this server, so importing it
    back would make the two modules a cycle.
    """

    api_key: str
    api_version: str
    lock: threading.RLock
    events: list[Obj]
    event_by_id: dict[str, Obj]

    @property
    def items(self) -> Mapping[str, list[Obj]]: ...
    @property
    def lines(self) -> Mapping[str, list[Obj]]: ...
    @property
    def balance_transactions(self) -> Mapping[str, list[Obj]]: ...

    def checked(self, kind: str, obj: Obj) -> Obj: ...
    def check_list(self, envelope: Obj) -> Obj: ...
    def get(self, kind: str, object_id: str) -> Obj | None: ...
    def newest_first(self, kind: str) -> list[Obj]: ...
    def create_portal_session(self, customer_id: str, return_url: str | None) -> Obj: ...


MAX_LIMIT: Final = 100
_BRACKETS = re.compile(r"\[([^\]]*)\]")


class StripeHttpError(Exception):
    """An error answer with Stripe's error body."""

    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: Obj = {"error": {"type": error_type, "message": message, **extra}}


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` instead."""

    status: int
    times: int = 1
    path_prefix: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> Obj:
        if self.status == 429:
            return {
                "error": {
                    "type": "invalid_request_error",
                    "code": "rate_limit",
                    "message": "Too many requests hit the API too quickly.",
                }
            }
        return {"error": {"type": "api_error", "message": f"local fault {self.status}"}}


def _slot(node: list[Any], part: str) -> int:
    index = int(part) if part.isdigit() else len(node)
    while len(node) <= index:
        node.append(None)
    return index


def parse_form(pairs: list[tuple[str, str]]) -> Obj:
    """Stripe's form encoding (``a[b]=1``, ``a[0]=x``) as nested dicts and lists."""
    root: Obj = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_BRACKETS.findall(key[len(head) :])]
        node: Any = root
        for part, following in itertools.pairwise(parts):
            fresh: Any = [] if following.isdigit() or following == "" else {}
            if isinstance(node, list):
                index = _slot(node, part)
                if node[index] is None:
                    node[index] = fresh
                node = node[index]
            else:
                node = node.setdefault(part, fresh)
        if isinstance(node, list):
            node[_slot(node, parts[-1])] = value
        else:
            node[parts[-1]] = value
    return root


def _int_param(params: Obj, name: str, default: int) -> int:
    value = params.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise StripeHttpError(
            400, "invalid_request_error", f"Invalid integer: {value}", param=name
        ) from exc


def paginate(items: list[Obj], params: Obj, url: str, check: Callable[[Obj], Obj]) -> Obj:
    """One page of a newest-first list: ``limit``, ``starting_after``, ``has_more``."""
    limit = _int_param(params, "limit", 10)
    if not 1 <= limit <= MAX_LIMIT:
        raise StripeHttpError(
            400, "invalid_request_error", "limit must be between 1 and 100", param="limit"
        )
    if params.get("ending_before"):
        raise StripeHttpError(
            400, "invalid_request_error", "the local server pages forward only (starting_after)"
        )
    start = 0
    after = params.get("starting_after")
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise StripeHttpError(
                400,
                "invalid_request_error",
                f"No such object: '{after}'",
                param="starting_after",
                code="resource_missing",
            )
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return {
        "object": "list",
        "data": [check(item) for item in page],
        "has_more": start + limit < len(items),
        "url": url,
    }


def _created_matches(created: int, condition: Any) -> bool:
    if condition is None:
        return True
    if not isinstance(condition, dict):
        return created == int(condition)
    ops = {
        "gt": lambda v: created > v,
        "gte": lambda v: created >= v,
        "lt": lambda v: created < v,
        "lte": lambda v: created <= v,
    }
    return all(ops[op](int(value)) for op, value in condition.items() if op in ops)


def _type_matches(event_type: str, params: Obj) -> bool:
    wanted = params.get("type")
    if wanted:
        pattern = "^" + re.escape(str(wanted)).replace(r"\*", ".*") + "$"
        return re.match(pattern, event_type) is not None
    types = params.get("types")
    return not types or event_type in types


class LocalStripeServer:
    """The threaded HTTP server in front of a ``LocalStripe``."""

    def __init__(self, stripe: LocalStripe) -> None:
        self.stripe = stripe
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.versions_seen: Counter[str] = Counter()
        self.idempotency_keys: list[str] = []
        self.errors: list[str] = []  # requests it could not answer (e.g. a check failed)
        self._replies: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-stripe",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- test hooks ------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path_prefix: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` with ``status``."""
        with self._lock:
            self.faults.append(Fault(status, times, path_prefix, dict(headers or {})))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- request handling ------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.path_prefix):
                    fault.times -= 1
                    return fault
        return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Obj, dict[str, str]]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        with self._lock:
            self.requests.append((method, path))
        fault = self._take_fault(path)
        if fault is not None:
            return fault.status, fault.body(), fault.headers
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.stripe.api_key}":
            shown = auth.removeprefix("Bearer ")[:8]
            raise StripeHttpError(
                401, "invalid_request_error", f"Invalid API Key provided: {shown}***"
            )
        version = headers.get("stripe-version", "")
        self.versions_seen[version] += 1
        if version and version != self.stripe.api_version:
            raise StripeHttpError(
                400,
                "invalid_request_error",
                f"this local Stripe server speaks API version {self.stripe.api_version} "
                f"only; the request asked for {version}",
            )
        params = parse_form(parse_qsl(parts.query, keep_blank_values=True))
        if method == "POST":
            params.update(parse_form(parse_qsl(body.decode(), keep_blank_values=True)))
            return self._post(path, params, headers.get("idempotency-key", ""))
        if method != "GET":
            raise StripeHttpError(405, "invalid_request_error", f"{method} is not served here")
        return 200, self._get(path, params), {}

    def _post(self, path: str, params: Obj, key: str) -> tuple[int, Obj, dict[str, str]]:
        if path != "/v1/billing_portal/sessions":
            raise StripeHttpError(404, "invalid_request_error", f"Unrecognized request URL: {path}")
        with self._lock:
            if key:
                self.idempotency_keys.append(key)
                if key in self._replies:
                    status, cached = self._replies[key]
                    return status, json.loads(cached), {"Idempotent-Replayed": "true"}
        customer = str(params.get("customer") or "")
        found = self.stripe.get("customer", customer)
        if found is None or found.get("deleted"):
            raise StripeHttpError(
                400,
                "invalid_request_error",
                f"No such customer: '{customer}'",
                param="customer",
                code="resource_missing",
            )
        session = self.stripe.create_portal_session(customer, params.get("return_url"))
        session = self.stripe.checked("billing_portal.session", session)
        if key:
            with self._lock:
                self._replies[key] = (200, json.dumps(session).encode())
        return 200, session, {}

    def _get(self, path: str, params: Obj) -> Obj:
        s = self.stripe
        segments = path.strip("/").split("/")
        if segments[0] != "v1" or len(segments) < 2:
            raise StripeHttpError(404, "invalid_request_error", f"Unrecognized request URL: {path}")
        resource, rest = segments[1], segments[2:]
        kinds = {
            "customers": "customer",
            "products": "product",
            "prices": "price",
            "subscriptions": "subscription",
            "invoices": "invoice",
        }
        if resource == "events":
            return self._events(path, rest, params)
        if resource == "subscription_items" and not rest:
            sub_id = str(params.get("subscription") or "")
            if not sub_id or s.get("subscription", sub_id) is None:
                raise StripeHttpError(
                    404, "invalid_request_error", "No such subscription", param="subscription"
                )
            items = list(s.items[sub_id])
            return s.check_list(
                paginate(items, params, "/v1/subscription_items", _checker(s, "subscription_item"))
            )
        kind = kinds.get(resource)
        if kind is None:
            raise StripeHttpError(404, "invalid_request_error", f"Unrecognized request URL: {path}")
        if not rest:
            items = [obj for obj in s.newest_first(kind) if _listed(kind, obj, params)]
            return s.check_list(paginate(items, params, f"/v1/{resource}", _checker(s, kind)))
        obj = s.get(kind, rest[0])
        if obj is None:
            raise StripeHttpError(
                404,
                "invalid_request_error",
                f"No such {kind}: '{rest[0]}'",
                code="resource_missing",
            )
        if len(rest) == 1:
            if obj.get("deleted"):
                return {"id": obj["id"], "object": kind, "deleted": True}
            return s.checked(kind, obj)
        if obj.get("deleted"):
            raise StripeHttpError(
                404,
                "invalid_request_error",
                f"No such {kind}: '{obj['id']}'",
                code="resource_missing",
            )
        if kind == "invoice" and rest[1:] == ["lines"]:
            lines = list(s.lines.get(obj["id"], []))
            url = f"/v1/invoices/{obj['id']}/lines"
            return s.check_list(paginate(lines, params, url, _checker(s, "line_item")))
        if kind == "customer" and rest[1:] == ["balance_transactions"]:
            txs = list(reversed(s.balance_transactions.get(obj["id"], [])))
            url = f"/v1/customers/{obj['id']}/balance_transactions"
            return s.check_list(
                paginate(txs, params, url, _checker(s, "customer_balance_transaction"))
            )
        raise StripeHttpError(404, "invalid_request_error", f"Unrecognized request URL: {path}")

    def _events(self, path: str, rest: list[str], params: Obj) -> Obj:
        s = self.stripe
        if rest:
            event = s.event_by_id.get(rest[0])
            if event is None:
                raise StripeHttpError(404, "invalid_request_error", f"No such event: '{rest[0]}'")
            return s.checked("event", event)
        with s.lock:
            events = list(reversed(s.events))
        created = params.get("created")
        chosen = [
            e
            for e in events
            if _created_matches(int(e["created"]), created) and _type_matches(e["type"], params)
        ]
        return s.check_list(paginate(chosen, params, "/v1/events", _checker(s, "event")))


def _checker(stripe: LocalStripe, kind: str) -> Callable[[Obj], Obj]:
    return lambda obj: stripe.checked(kind, obj)


def _related(kind: str, obj: Obj, name: str) -> Any:
    """The id an object refers to, for the list filters customer, product, subscription."""
    if kind == "invoice" and name == "subscription":
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        return details.get("subscription")
    return obj.get(name)


def _listed(kind: str, obj: Obj, params: Obj) -> bool:
    """Stripe's list filters (the ones meterhouse uses) and its default exclusions."""
    if obj.get("deleted"):
        return False
    for name in ("customer", "product", "subscription"):
        wanted = params.get(name)
        if wanted and kind != name and _related(kind, obj, name) != wanted:
            return False
    if kind == "subscription":
        status = params.get("status")
        if status == "all":
            return True
        if status:
            return bool(obj["status"] == status)
        return obj["status"] not in ("canceled", "incomplete_expired")
    if kind in ("product", "price") and "active" in params:
        return bool(obj["active"]) == (str(params["active"]).lower() == "true")
    if kind == "invoice" and params.get("status"):
        return bool(obj["status"] == params["status"])
    return True


def _handler_for(server: LocalStripeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes; without TCP_NODELAY the client's
        # delayed ACK stalls every response by ~40 ms.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, payload, extra = server.handle(self.command, self.path, headers, body)
            except StripeHttpError as exc:
                status, payload, extra = exc.status, exc.body, {}
            except Exception as exc:  # a checker refusal or a bug: answer, and say so
                server.errors.append(f"{self.command} {self.path}: {exc}")
                status, extra = 500, {"Stripe-Should-Retry": "false"}
                payload = {"error": {"type": "api_error", "message": f"local server: {exc}"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_local_{len(server.requests)}")
            self.send_header("Stripe-Version", server.stripe.api_version)
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve
        do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests count requests instead of reading access logs."""

    return Handler
