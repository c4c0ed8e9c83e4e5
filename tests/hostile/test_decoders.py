"""Issue 13, item 8 (and the rest of "every decoder"): bodies nested deep with long keys
are refused with a 4xx, in time and memory linear in their size, by the real service."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import msgspec
import pytest
import requests

from tests.durability.service import Service, model_call
from tests.hostile.test_http_limits import answers_quickly, rss_bytes

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

LONG = "k" * 5000
DEPTH = 900


def deep_object(depth: int, key: str) -> bytes:
    """``{"key": {"key": ... {} ...}}`` written out directly (no recursion here either)."""
    head = f'{{"{key}":'.encode()
    return head * depth + b"{}" + b"}" * depth


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(tmp_path_factory.mktemp("decoders")).start()
    try:
        yield started
    finally:
        started.stop()


def post(service: Service, path: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        f"{service.url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {service.token}", "Content-Type": content_type},
        timeout=60,
    )


def test_otlp_json_nested_deep_with_long_keys_is_refused_linearly(service: Service) -> None:
    body = b'{"resourceSpans": [], "x": ' + deep_object(DEPTH, LONG) + b"}"
    assert 4_000_000 < len(body) < 5 * 1024 * 1024
    before = rss_bytes(service)
    started = time.monotonic()
    answer = post(service, "/v1/traces", body, "application/json")
    elapsed = time.monotonic() - started
    assert answer.status_code == 400, answer.text[:300]
    assert "nested deeper" in answer.text
    assert elapsed < 5
    assert rss_bytes(service) - before < 200 << 20
    assert answers_quickly(service) < 1


def test_otlp_ids_deep_inside_are_refused_and_shallow_ones_work(service: Service) -> None:
    # A real (shallow) request still decodes; its bad id is reported with its path.
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}'
    answer = post(service, "/v1/traces", body, "application/json")
    assert answer.status_code == 400
    assert "$.resourceSpans[0].scopeSpans[0].spans[0].traceId" in answer.text


def test_deep_json_on_every_json_endpoint_is_a_4xx(service: Service) -> None:
    deep_list = b"[" * 200_000 + b"]" * 200_000
    for path, content_type in (
        ("/api/v1/events", "application/cloudevents-batch+json"),
        ("/api/v1/events", "application/cloudevents+json"),
        ("/v1/traces", "application/json"),
    ):
        answer = post(service, path, deep_list, content_type)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:200])
        deep = deep_object(50_000, "a")
        answer = post(service, path, deep, content_type)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:200])
    admin = {"Authorization": "Bearer durability-admin", "Content-Type": "application/json"}
    answer = requests.post(
        f"{service.url}/api/v1/sql", data=deep_object(50_000, "a"), headers=admin, timeout=60
    )
    assert 400 <= answer.status_code < 500, answer.text[:200]
    assert answers_quickly(service) < 1


def post_gzipped(service: Service, body: bytes) -> requests.Response:
    return requests.post(
        f"{service.url}/api/v1/events",
        data=body,
        headers={
            "Authorization": f"Bearer {service.token}",
            "Content-Type": "application/cloudevents-batch+json",
            "Content-Encoding": "gzip",
        },
        timeout=60,
    )


def test_a_gzip_bomb_is_refused(service: Service) -> None:
    answer = post_gzipped(service, gzip.compress(b"[" + b" " * (64 << 20) + b"]"))
    assert answer.status_code == 413, answer.text[:200]


def test_every_gzip_member_is_read(service: Service) -> None:
    events = [model_call("gz-1"), model_call("gz-2")]
    text = msgspec.json.encode(events)
    cut = text.index(b"},{") + 2
    answer = post_gzipped(service, gzip.compress(text[:cut]) + gzip.compress(text[cut:]))
    assert answer.status_code == 204, answer.text[:300]
    service.wait_drained()
    assert {"gz-1", "gz-2"} <= set(service.counts("usage_events"))
