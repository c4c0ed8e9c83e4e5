"""A job platform's REST API on 127.0.0.1, in a thread, that fails on cue and recovers.

Serves GET /api/{jobs,runs,logs}?limit=N&updated_since=CURSOR as docs/jobs.md describes:
items in update order, each with a change sequence number; the cursor is the number of
the last item returned. A changed item gets a new number, so it comes again after the
cursor, as a platform listing by updated_at does.

``fail_next`` queues what the next requests get instead of a page: "500", "503", "429"
(with Retry-After: 0), "drop" (the connection is closed without an answer) or "401".
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

STREAMS = ("jobs", "runs", "logs")
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class FakePlatform:
    def __init__(self) -> None:
        self.items: dict[str, list[tuple[int, dict[str, Any]]]] = {n: [] for n in STREAMS}
        self.sequence = 0
        self.offered = set(STREAMS)
        self.failures: deque[str] = deque()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.token = ""
        self._lock = threading.Lock()
        self.url = ""

    def put(self, stream: str, item: dict[str, Any], key: str) -> None:
        """Add ``item``, or replace the one with the same ``key`` as its newest change."""
        with self._lock:
            self.sequence += 1
            kept = [(seq, i) for seq, i in self.items[stream] if i[key] != item[key]]
            self.items[stream] = [*kept, (self.sequence, item)]

    def fail_next(self, *actions: str) -> None:
        with self._lock:
            self.failures.extend(actions)

    def cursors_asked(self, stream: str) -> list[str]:
        return [params.get("updated_since", "") for path, params in self.requests if path == stream]

    def answer(
        self, path: str, params: dict[str, str], auth: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((path, params))
            action = self.failures.popleft() if self.failures else "ok"
            if action == "drop":
                return -1, {}, b""
            if action in ("500", "503"):
                return int(action), {}, b"upstream trouble"
            if action == "429":
                return 429, {"Retry-After": "0"}, b"slow down"
            if action == "401" or (self.token and auth != f"Bearer {self.token}"):
                return 401, {}, b'{"error": "bad token"}'
            if path not in self.offered:
                return 404, {}, b"not found"
            after = int(params.get("updated_since") or 0)
            limit = int(params.get("limit", "100"))
            page = [(seq, i) for seq, i in self.items[path] if seq > after][:limit]
            cursor = page[-1][0] if page else after
            body = {"items": [i for _, i in page], "next_cursor": str(cursor)}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _handler(platform: FakePlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.removeprefix("/api/")
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, headers, body = platform.answer(
                path, params, self.headers.get("Authorization", "")
            )
            if status < 0:
                self.close_connection = True  # no answer at all: a dropped connection
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(platform: FakePlatform) -> Iterator[FakePlatform]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(platform))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    platform.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield platform
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# Sample items, as a platform would list them.


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def job_item(n: int) -> dict[str, Any]:
    kind = ("scheduler", "asset", "webhook", "notification", "asset")[n]
    return {
        "account_id": "acme", "job_id": f"job-{n}", "kind": kind, "name": f"job {n}",
        "updated_at": iso(T0), "typical_duration_ms": 60_000, "extra_field": "ignored",
    }  # fmt: skip


def run_item(n: int, status: str, *, seconds: int = 30) -> dict[str, Any]:
    queued = T0 + timedelta(minutes=n)
    started = queued + timedelta(seconds=3)
    item: dict[str, Any] = {
        "account_id": "acme", "job_id": f"job-{n % 5}", "run_id": f"run-{n}",
        "kind": job_item(n % 5)["kind"], "status": status,
        "queued_at": iso(queued), "started_at": iso(started),
    }  # fmt: skip
    if status not in ("queued", "running"):
        item["finished_at"] = iso(started + timedelta(seconds=seconds))
    if status == "failed":
        item |= {"error_type": "HTTPError", "error_message": f"502 from hook {n}"}
    return item


def fill(platform: FakePlatform, runs: int = 10) -> None:
    for n in range(5):
        platform.put("jobs", job_item(n), "job_id")
    for n in range(runs):
        status = "running" if n % 3 == 0 else ("failed" if n % 4 == 1 else "succeeded")
        platform.put("runs", run_item(n, status), "run_id")
    platform.put("logs", {
        "account_id": "acme", "job_id": "job-1", "run_id": "run-1", "kind": "asset",
        "level": "error", "message": "hook failed", "time": iso(T0 + timedelta(minutes=2)),
        "error_type": "HTTPError", "error_message": "502 from hook 1",
    }, "run_id")  # fmt: skip
