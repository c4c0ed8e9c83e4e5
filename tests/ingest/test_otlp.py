"""POST /v1/traces: GenAI spans become model-call usage, in both OTLP encodings."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.ingest.conftest import SOURCE, Service

TRACE = "5b8efff798038103d269b633813fc60c"


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def json_span(span_id: str, attrs: dict[str, Any], *, end_ns: int | None = None) -> dict[str, Any]:
    end = end_ns or time.time_ns()
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(end - 1_000_000_000),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
    }


def json_request(spans: list[dict[str, Any]], resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": k, "value": _value(v)} for k, v in resource.items()]
                },
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 50,
}
RESOURCE = {
    "service.name": "chat-api",
    "meterhouse.account.id": "acme",
    "meterhouse.team.id": "data",
    "meterhouse.project.id": "bot",
}


def post_json(service: Service, body: dict[str, Any]) -> Any:
    return service.post(body, content_type="application/json", path="/v1/traces")


def test_a_genai_span_becomes_one_model_call(service: Service) -> None:
    span = json_span("eee19b7ec3c1b174", {**CHAT, "meterhouse.user.id": "alice"})
    answer = post_json(service, json_request([span], RESOURCE))
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    row = next(
        service.store.query(
            "SELECT source, event_id, account_id, team_id, project_id, user_id, item, provider, "
            "attributes FROM usage_events"
        ).dicts()
    )
    assert row["source"] == SOURCE
    assert row["event_id"] == f"{TRACE}-eee19b7ec3c1b174"
    assert (row["account_id"], row["team_id"], row["project_id"], row["user_id"]) == (
        "acme",
        "data",
        "bot",
        "alice",
    )
    data = json.loads(row["attributes"])
    assert (data["model"], row["provider"]) == ("gpt-4o-2024-08-06", "openai")
    assert data["input_tokens"] == 1200  # cached tokens included, as in the GenAI conventions
    assert (data["cache_read_tokens"], data["cache_write_tokens"]) == (1000, 100)
    assert (data["reasoning_tokens"], data["output_tokens"], data["operation"]) == (50, 300, "chat")


def test_span_attributes_win_over_resource_and_fallbacks_apply(service: Service) -> None:
    attrs = {
        "gen_ai.request.model": "claude-3-5-haiku-latest",
        "gen_ai.system": "anthropic",
        "gen_ai.usage.input_tokens": 10,
        "meterhouse.account.id": "globex",
        "user.id": "bob",
    }
    answer = post_json(service, json_request([json_span("00000000000000a1", attrs)], RESOURCE))
    assert answer.status == 200
    row = service.store.query(
        "SELECT account_id, team_id, user_id, item, provider FROM usage_events"
    ).rows
    assert row == [("globex", "data", "bob", "claude-3-5-haiku-latest", "anthropic")]


def test_agent_tool_and_plain_spans_are_not_billed(service: Service) -> None:
    spans = [
        json_span("00000000000000b1", {**CHAT, "gen_ai.operation.name": "invoke_agent"}),
        json_span("00000000000000b2", {**CHAT, "gen_ai.operation.name": "execute_tool"}),
        json_span("00000000000000b3", {"http.route": "/v1/chat"}),
        json_span("00000000000000b4", CHAT),
    ]
    assert post_json(service, json_request(spans, RESOURCE)).status == 200
    assert service.store.query("SELECT event_id FROM usage_events").column("event_id") == [
        f"{TRACE}-00000000000000b4"
    ]
    assert service.metric("meterhouse_ingest_spans_ignored_total") == 3


def test_bad_spans_are_rejected_in_partial_success_and_good_ones_kept(service: Service) -> None:
    spans = [
        json_span("00000000000000c1", CHAT),
        json_span("00000000000000c2", {**CHAT, "gen_ai.usage.input_tokens": -4}),
        json_span("00000000000000c3", {**CHAT, "gen_ai.usage.output_tokens": "many"}),
        json_span("00000000000000c4", {**CHAT, "gen_ai.usage.input_tokens": 10}),
        json_span("00000000000000c5", CHAT, end_ns=time.time_ns() + 3 * 86_400 * 10**9),
    ]
    answer = post_json(service, json_request(spans, RESOURCE))
    assert answer.status == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "4"
    message = partial["errorMessage"]
    assert "span 1: gen_ai.usage.input_tokens: -4 is outside" in message
    assert "span 2: gen_ai.usage.output_tokens: must be an integer" in message
    assert "span 3: gen_ai.usage.cache_read.input_tokens: " in message
    assert "span 4: endTimeUnixNano: " in message
    assert service.scalar("SELECT count() FROM usage_events") == 1


def test_spans_without_an_account_are_rejected_unless_the_key_has_one(service: Service) -> None:
    body = json_request([json_span("00000000000000d1", CHAT)], {"service.name": "x"})
    answer = post_json(service, body)
    assert "meterhouse.account.id: no account" in answer.json()["partialSuccess"]["errorMessage"]
    scoped = service.key(account="initech")
    answer = service.post(body, token=scoped, content_type="application/json", path="/v1/traces")
    assert answer.json() == {}
    assert service.scalar("SELECT account_id FROM usage_events") == "initech"


def test_a_key_scoped_to_one_account_rejects_other_accounts_spans(service: Service) -> None:
    scoped = service.key(account="initech")
    body = json_request([json_span("00000000000000d2", CHAT)], RESOURCE)
    answer = service.post(body, token=scoped, content_type="application/json", path="/v1/traces")
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_retried_exports_count_once(service: Service) -> None:
    body = json_request(
        [json_span("00000000000000e1", CHAT), json_span("00000000000000e2", CHAT)], RESOURCE
    )
    for _ in range(3):
        assert post_json(service, body).status == 200
    assert service.scalar("SELECT count() FROM usage_events") == 2
    assert service.scalar("SELECT sum(events) FROM usage_daily WHERE usage_type = 'output'") == 2


def _pb_value(value: Any) -> AnyValue:
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=value)


def test_protobuf_requests_get_protobuf_answers(service: Service) -> None:
    now = time.time_ns()
    span = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=os.urandom(8),
        name="chat",
        start_time_unix_nano=now - 10**9,
        end_time_unix_nano=now,
        attributes=[KeyValue(key=k, value=_pb_value(v)) for k, v in CHAT.items()],
    )
    bad = Span(
        trace_id=bytes(16),
        span_id=os.urandom(8),
        end_time_unix_nano=now,
        attributes=[KeyValue(key=k, value=_pb_value(v)) for k, v in CHAT.items()],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={
                    "attributes": [KeyValue(key=k, value=_pb_value(v)) for k, v in RESOURCE.items()]
                },
                scope_spans=[ScopeSpans(spans=[span, bad])],
            )
        ]
    )
    answer = service.post(
        request.SerializeToString(), content_type="application/x-protobuf", path="/v1/traces"
    )
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.body)
    assert response.partial_success.rejected_spans == 1
    assert "traceId" in response.partial_success.error_message
    assert service.scalar("SELECT count() FROM usage_events") == 1


def test_malformed_bodies_get_a_status_in_the_request_encoding(service: Service) -> None:
    answer = service.post(b"\xff\xff\xff", content_type="application/x-protobuf", path="/v1/traces")
    assert answer.status == 400
    status = status_pb2.Status.FromString(answer.body)
    assert status.code == 3
    assert "ExportTraceServiceRequest" in status.message
    for body in (
        b"{not json",
        b"[]",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
    ):
        answer = service.post(body, content_type="application/json", path="/v1/traces")
        assert answer.status == 400, body
        assert answer.json()["code"] == 3


def test_otlp_refuses_bad_keys_with_a_status(service: Service) -> None:
    answer = service.post(
        b"", token="nope", content_type="application/x-protobuf", path="/v1/traces"
    )
    assert answer.status == 401
    assert status_pb2.Status.FromString(answer.body).code == 16


def test_spans_of_an_unknown_account_are_refused_and_the_others_kept(service: Service) -> None:
    known = json_span("00000000000000e1", CHAT)
    stray = json_span("00000000000000e2", {**CHAT, "meterhouse.account.id": "ghost"})
    answer = post_json(service, json_request([known, stray], RESOURCE))
    assert answer.status == 200, answer.body
    assert answer.json()["partialSuccess"] == {
        "rejectedSpans": "1",
        "errorMessage": "span 1: meterhouse.account.id: no account 'ghost': create it first "
        "(`meterhouse accounts create ghost`) or fix the id",
    }
    accounts = service.store.query("SELECT account_id FROM usage_events").column("account_id")
    assert accounts == ["acme"]
