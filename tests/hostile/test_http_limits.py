"""Issue 13, items 4, 5, 6, 10 (webhook) and 11: unauthenticated clients cannot exhaust
`meterhouse run` (huge chunked bodies, huge headers, idle and half-sent requests, floods of
connections), bad admin tokens are answered 401 and limited, and SIGTERM stops it cleanly.
All against the real process, over real sockets."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.durability.service import Service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

ADMIN = "durability-admin"  # the admin token tests.durability.service starts with


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(
        tmp_path_factory.mktemp("http-limits"),
        env={
            "MH_HTTP_HEADER_TIMEOUT_SECONDS": "2",
            "MH_HTTP_BODY_TIMEOUT_SECONDS": "3",
            "MH_HTTP_MAX_CONNECTIONS_PER_CLIENT": "100",
            "MH_STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
        },
    ).start()
    try:
        yield started
    finally:
        started.stop()


def rss_bytes(service: Service) -> int:
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def answers_quickly(service: Service) -> float:
    started = time.monotonic()
    assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    return time.monotonic() - started


def connect(service: Service) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=10)


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and len(data) > 200:
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_huge_chunked_webhook_body_is_refused_with_bounded_memory(service: Service) -> None:
    before = rss_bytes(service)
    sock = connect(service)
    sock.sendall(
        b"POST /api/v1/stripe/webhook HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * (1 << 20)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    try:
        for _ in range(1024):  # up to 1 GB, while the server keeps reading
            sock.sendall(frame)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 512 << 20, f"the server read {sent} bytes before refusing"
    assert rss_bytes(service) - before < 64 << 20
    assert answers_quickly(service) < 1


def test_a_huge_header_is_refused_at_once_and_stalls_nobody(service: Service) -> None:
    sock = connect(service)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    stalled: list[float] = []

    def probe() -> None:
        stalled.append(answers_quickly(service))

    checker = threading.Thread(target=probe)
    try:
        for _ in range(64):  # up to 64 MB of one header
            sock.sendall(b"a" * (1 << 20))
            if not checker.is_alive() and not stalled:
                checker.start()
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = read_answer(sock)
    sock.close()
    checker.join(10)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert stalled and stalled[0] < 1
    assert answers_quickly(service) < 1


def test_idle_and_half_sent_requests_are_closed(service: Service) -> None:
    idle = [connect(service) for _ in range(40)]
    half = [connect(service) for _ in range(40)]
    for sock in half:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends the head
    slow_body = connect(service)
    slow_body.sendall(
        b"POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n{"
    )
    time.sleep(4.5)  # past the head (2 s) and body (3 s) deadlines
    for sock in [*idle, *half, slow_body]:
        sock.settimeout(2)
        answer = read_answer(sock)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        with pytest.raises(OSError):  # closed by the server: a write fails or reads EOF
            sock.sendall(b"\r\n" * 10)
            time.sleep(0.05)
            sock.sendall(b"\r\n" * 10)
            if not sock.recv(10):
                raise OSError("closed")
        sock.close()
    assert answers_quickly(service) < 1


def test_a_flood_of_connections_from_one_address_leaves_the_service_answering(
    service: Service,
) -> None:
    flood = []
    try:
        for _ in range(300):
            flood.append(connect(service))
        refused = 0
        for sock in flood[100:]:
            sock.settimeout(2)
            if read_answer(sock).startswith(b"HTTP/1.1 503"):
                refused += 1
        assert refused >= 150
    finally:
        for sock in flood:
            sock.close()
    time.sleep(0.5)
    assert answers_quickly(service) < 1


def test_bad_admin_tokens_on_the_key_api_are_401_and_limited(service: Service) -> None:
    url = f"{service.url}/api/v1/keys"
    answer = requests.get(url, headers={"Authorization": "Bearer \xe9"}, timeout=10)
    assert answer.status_code == 401, answer.text
    statuses = [
        requests.get(url, headers={"Authorization": f"Bearer wrong-{n}"}, timeout=10).status_code
        for n in range(40)
    ]
    assert set(statuses) <= {401, 429}
    assert 429 in statuses
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert 'meterhouse_read_auth_failures_total{reason="malformed"}' in metrics


def test_a_signed_webhook_that_is_not_an_event_is_400(service: Service) -> None:
    import stripe

    payload = "[1,2]"
    stamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{stamp}.{payload}", "whsec_test_secret"
    )
    answer = requests.post(
        f"{service.url}/api/v1/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": f"t={stamp},v1={signature}"},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    assert service.process is not None
    owner = service.data_dir / "meterhouse-owner.json"
    assert owner.exists()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0, service.log_tail()
    assert not owner.exists()
    # The store was closed: another process opens it at once.
    again = Service(tmp_path, port=service.port).start()
    again.stop()
    assert os.path.exists(service.data_dir)
