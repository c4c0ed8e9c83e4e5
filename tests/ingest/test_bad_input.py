"""Bad input gets a 4xx that names what is wrong, never a 500 (hypothesis searches for one)."""

from __future__ import annotations

import gzip
import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from meterhouse.store.base import Store
from tests.ingest.conftest import SOURCE, Service, event, make_service

FUZZ = settings(
    max_examples=int(os.environ.get("INGEST_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALLOWED = {204, 400, 403, 413, 415}
_ids = itertools.count()


@pytest.fixture(scope="module")
def shared(module_store: Store) -> Service:
    """One service for the whole module: hypothesis runs hundreds of examples on it."""
    return make_service(module_store, ingest_auth_failure_burst=1_000_000)


def _check_problem(answer: Any) -> dict[str, Any]:
    assert answer.status in ALLOWED, (answer.status, answer.body[:500])
    if answer.status == 204:
        return {}
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == answer.status
    assert body["detail"]
    for error in body.get("errors", []):
        assert set(error) == {"index", "field", "message"}
        assert isinstance(error["message"], str) and error["message"]
    return body


def _fresh_id() -> str:
    return f"fuzz-{next(_ids)}"


VALID: dict[str, dict[str, Any]] = {
    "com.meterhouse.model.call": {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 2},
    "com.meterhouse.job.definition": {"job_id": "j", "kind": "asset", "name": "n"},
    "com.meterhouse.job.run": {"job_id": "j", "run_id": "r", "kind": "asset", "status": "queued"},
    "com.meterhouse.job.log": {
        "job_id": "j",
        "run_id": "r",
        "kind": "asset",
        "level": "info",
        "message": "m",
    },
    "com.meterhouse.api.call": {"route": "/r", "method": "GET", "status_code": 200},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        ["application/json", "application/cloudevents+json", "application/cloudevents-batch+json"]
    ),
)
def test_random_bytes_never_fail_the_server(
    shared: Service, body: bytes, content_type: str
) -> None:
    _check_problem(shared.post(body, content_type=content_type))


@FUZZ
@given(value=json_values)
def test_random_json_never_fails_the_server(shared: Service, value: Any) -> None:
    _check_problem(shared.post(msgspec.json.encode(value), content_type="application/json"))


def _mutations() -> st.SearchStrategy[tuple[str, str, Any]]:
    envelope = st.sampled_from(
        ["id", "source", "type", "time", "subject", "specversion", "data", "datacontenttype"]
    )
    fields = st.sampled_from(
        sorted(
            {f for data in VALID.values() for f in data}
            | {
                "account_id",
                "team_id",
                "cache_read_tokens",
                "duration_seconds",
                "started_at",
                "typical_duration_ms",
                "reasoning_tokens",
                "duration_ms",
                "unknown_field",
            }
        )
    )
    value = json_values | st.just("__delete__")
    return st.tuples(
        st.sampled_from(sorted(VALID)),
        envelope.map(lambda f: f) | fields.map(lambda f: f"data.{f}"),
        value,
    )


@FUZZ
@given(mutation=_mutations())
def test_one_bad_field_is_named_and_the_event_refused(
    shared: Service, mutation: tuple[str, str, Any]
) -> None:
    event_type, path, value = mutation
    body = (
        event(_fresh_id(), event_type, **VALID[event_type])
        if event_type != ("com.meterhouse.model.call")
        else event(_fresh_id(), **VALID[event_type])
    )
    target, name = (body["data"], path[5:]) if path.startswith("data.") else (body, path)
    if value == "__delete__":
        target.pop(name, None)
    else:
        target[name] = value
    answer = shared.post([body])
    problem = _check_problem(answer)
    if answer.status in (400, 403) and "errors" in problem:
        fields = [error["field"] for error in problem["errors"]]
        assert all(error["index"] == 0 for error in problem["errors"])
        related = [
            f
            for f in fields
            if f == path
            or f.startswith(path)
            or path.startswith(f)
            or f in ("subject", "data.account_id", "")
        ]
        assert related, (path, value, problem["errors"])


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"input_tokens": -1}, "data.input_tokens", "outside the allowed range"),
        ({"input_tokens": 10**12}, "data.input_tokens", "outside the allowed range"),
        ({"output_tokens": 2**70}, "data.output_tokens", "outside the allowed range"),
        ({"input_tokens": 1.5}, "data.input_tokens", "Expected `int`, got `float`"),
        ({"input_tokens": True}, "data.input_tokens", "Expected `int`, got `bool`"),
        ({"input_tokens": None}, "data.input_tokens", "Expected `int`, got `null`"),
        ({"input_tokens": 5, "cache_read_tokens": 6}, "data.cache_read_tokens", "exceed"),
        ({"model": ""}, "data.model", "must not be empty"),
        ({"model": "x" * 300}, "data.model", "longer than 256"),
        ({"team_id": "has space"}, "data.team_id", "is not an id"),
        ({"input_token": 5}, "data.input_token", "unknown field"),
    ],
)
def test_model_call_values_are_checked(
    shared: Service, data: dict[str, Any], field: str, text: str
) -> None:
    answer = shared.post([event(_fresh_id()), event(_fresh_id(), **data)])
    assert answer.status == 400
    [error] = answer.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert text in error["message"]


def _job_run(**data: Any) -> dict[str, Any]:
    return event(
        _fresh_id(), "com.meterhouse.job.run", job_id="j", run_id="r", kind="asset", **data
    )


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (_job_run(status="done"), "data.status", "Invalid enum value 'done'"),
        (_job_run(status="failed", duration_seconds="NaN"), "data.duration_seconds", "outside"),
        (_job_run(status="failed", duration_seconds=-1), "data.duration_seconds", "outside"),
        (_job_run(status="failed", duration_seconds="1e400"), "data.duration_seconds", "outside"),
        (
            _job_run(status="failed", started_at="2026-01-01T00:00:00"),
            "data.started_at",
            "needs a UTC offset",
        ),
        (
            _job_run(
                status="failed", started_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
            ),
            "data.started_at",
            "later than the event time",
        ),
        (_job_run(), "data.status", "missing required field `status`"),
        (
            event(_fresh_id(), "com.meterhouse.api.call", route="/r", status_code=700),
            "data.status_code",
            "100..599",
        ),
        (
            event(
                _fresh_id(),
                "com.meterhouse.job.log",
                job_id="j",
                run_id="r",
                kind="asset",
                level="fatal",
                message="m",
            ),
            "data.level",
            "Invalid enum value",
        ),
        (
            event(_fresh_id(), time=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
            "time",
            "ahead of the server clock",
        ),
        (event(_fresh_id(), time="1970-01-01T00:00:00Z"), "time", "older than 400 day(s)"),
        (event(_fresh_id(), time="2026-01-01T00:00:00"), "time", "timezone"),
        (event(_fresh_id(), time="yesterday"), "time", "Invalid RFC3339"),
        (event(_fresh_id(), subject="bad subject!"), "subject", "is not an id"),
        (event("", subject="acme"), "id", "must not be empty"),
        (event("x\u0000y"), "id", "control characters"),
        ({**event(_fresh_id()), "specversion": "0.3"}, "specversion", '"1.0"'),
        ({**event(_fresh_id()), "datacontenttype": "text/xml"}, "datacontenttype", "application"),
        ({**event(_fresh_id()), "data_base64": "AAAA", "data": None}, "data", "needs data"),
        (
            {k: v for k, v in event(_fresh_id()).items() if k != "type"},
            "type",
            "missing required field `type`",
        ),
        # Outside com.meterhouse.* a type is a free-form event (tests/ingest/test_free_form.py).
        ({**event(_fresh_id()), "type": "com.meterhouse.tokens"}, "type", "unknown event type"),
        ({**event(_fresh_id()), "data": [1, 2]}, "data", "Expected `object`, got `array`"),
        ({**event(_fresh_id()), "data": "x"}, "data", "Expected `object`, got `str`"),
        ({**event(_fresh_id()), "id": 5}, "id", "Expected `str`, got `int`"),
    ],
)
def test_envelope_and_other_types_are_checked(
    shared: Service, body: dict[str, Any], field: str, text: str
) -> None:
    answer = shared.post([body])
    assert answer.status == 400, answer.body
    errors = answer.json()["errors"]
    assert any(e["field"] == field and text in e["message"] for e in errors), errors


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"", {}, 400),
        (b"   ", {}, 400),
        (b'[{"a": 1}', {}, 400),
        (b"[" * 5000 + b"]" * 5000, {}, 400),
        (b'[{"specversion": "1.0", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}]", {}, 400),
        (b"not gzip", {"content-encoding": "gzip"}, 400),
        (gzip.compress(b"[]")[:-4], {"content-encoding": "gzip"}, 400),
        (b"[]", {"content-encoding": "br"}, 415),
        (b"[]", {"content-length": str(10**12)}, 413),
        (b"\xff\xfe[]", {}, 400),
    ],
)
def test_broken_bodies(shared: Service, body: bytes, headers: dict[str, str], status: int) -> None:
    answer = shared.post(body, headers=headers)
    assert answer.status == status, answer.body
    _check_problem(answer)


def test_the_first_hundred_errors_are_reported(shared: Service) -> None:
    answer = shared.post([event(_fresh_id(), input_tokens=-1) for _ in range(150)])
    body = answer.json()
    assert len(body["errors"]) == 100
    assert body["detail"].startswith("150 of 150 events refused")


def test_float_token_counts_that_are_whole_are_still_refused(shared: Service) -> None:
    # JSON has one number type, but a token count written 3.0 is not what the schema says;
    # OTLP's doubleValue is different: protobuf keeps int and double apart (see test_otlp).
    answer = shared.post([event(_fresh_id(), input_tokens=3.0)])
    assert answer.status == 400
    assert answer.json()["errors"][0]["field"] == "data.input_tokens"


any_values = st.one_of(
    st.builds(AnyValue, string_value=st.text(max_size=20)),
    st.builds(AnyValue, int_value=st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(AnyValue, double_value=st.floats()),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, bytes_value=st.binary(max_size=8)),
)
attribute_names = st.sampled_from(
    [
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "meterhouse.account.id",
        "meterhouse.team.id",
        "meterhouse.project.id",
        "user.id",
        "other",
    ]
)
spans = st.builds(
    Span,
    trace_id=st.binary(min_size=0, max_size=17),
    span_id=st.binary(min_size=0, max_size=9),
    end_time_unix_nano=st.integers(min_value=0, max_value=2**64 - 1),
    start_time_unix_nano=st.integers(min_value=0, max_value=2**64 - 1),
    attributes=st.lists(st.builds(KeyValue, key=attribute_names, value=any_values), max_size=8),
)


@FUZZ
@given(
    batch=st.lists(spans, max_size=5),
    resource=st.lists(st.builds(KeyValue, key=attribute_names, value=any_values), max_size=4),
)
def test_random_spans_never_fail_the_server(
    shared: Service, batch: list[Span], resource: list[KeyValue]
) -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource={"attributes": resource}, scope_spans=[ScopeSpans(spans=batch)])
        ]
    )
    answer = shared.post(
        request.SerializeToString(), content_type="application/x-protobuf", path="/v1/traces"
    )
    assert answer.status == 200, answer.body


@FUZZ
@given(
    body=st.binary(max_size=300) | json_values.map(msgspec.json.encode),
    content_type=st.sampled_from(["application/x-protobuf", "application/json"]),
)
def test_random_otlp_bodies_never_fail_the_server(
    shared: Service, body: bytes, content_type: str
) -> None:
    answer = shared.post(body, content_type=content_type, path="/v1/traces")
    assert answer.status in (200, 400), answer.body


@FUZZ
@given(
    content_type=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    encoding=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    path=st.sampled_from(["/api/v1/events", "/v1/traces"]),
)
def test_random_headers_never_fail_the_server(
    shared: Service, content_type: str, encoding: str, token: str, path: str
) -> None:
    answer = shared.post(
        b"[]",
        content_type=content_type,
        token=token or None,
        path=path,
        headers={"content-encoding": encoding},
    )
    assert answer.status in {*ALLOWED, 200, 401}, answer.body
    if answer.status == 204:
        assert content_type.split(";", maxsplit=1)[0].strip().lower() in (
            "application/json",
            "application/cloudevents-batch+json",
        )


def test_the_source_scope_is_checked_before_anything_is_stored(shared: Service) -> None:
    other = shared.key(source="someone.else")
    answer = shared.post([event(_fresh_id())], token=other)
    assert answer.status == 403
    assert answer.json()["errors"][0]["field"] == "source"
    assert SOURCE in answer.json()["errors"][0]["message"]
