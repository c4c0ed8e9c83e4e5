"""OTLP/HTTP traces on the wire: ExportTraceServiceRequest in, the OTLP answer out.

Both encodings of the OTLP spec are read into the same protobuf message: binary protobuf
(``application/x-protobuf``) directly, and JSON (``application/json``) after turning the
hex trace and span ids of OTLP's JSON encoding into the base64 that protobuf's JSON
mapping expects. Answers use the request's encoding: 200 with an
ExportTraceServiceResponse (``partial_success`` counts rejected spans), or a
``google.rpc.Status`` for 4xx/5xx, as the OTLP/HTTP spec says.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
MEDIA_TYPES: Final = (PROTOBUF, JSON)
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
# google.rpc.Code values used in Status answers.
INVALID_ARGUMENT: Final = 3
UNAUTHENTICATED: Final = 16
PERMISSION_DENIED: Final = 7
RESOURCE_EXHAUSTED: Final = 8
UNAVAILABLE: Final = 14


class OtlpDecodeError(Exception):
    """The body is not an ExportTraceServiceRequest in the declared encoding."""


MAX_JSON_DEPTH: Final = 64  # OTLP's deepest real shape (nested AnyValue) is far less


def _hex_ids_to_base64(payload: dict[str, Any]) -> None:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping wants base64 for bytes.

    One pass over the body with an explicit stack, linear in its size, refused past
    MAX_JSON_DEPTH; a node's path is spelled out only for an error message.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(payload, 0, ())]
    while stack:
        node, depth, parent = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise OtlpDecodeError(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for name, value in node.items():
                if name in _ID_FIELDS and isinstance(value, str):
                    try:
                        node[name] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError as exc:
                        where = _path((parent, name))
                        raise OtlpDecodeError(f"{where}: {value[:40]!r} is not hex") from exc
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1, (parent, name)))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1, (parent, index)))


def _path(link: tuple[Any, ...]) -> str:
    """``$.a[0].b`` from the (parent, key) chain the walk keeps."""
    parts: list[str] = []
    while link:
        link, key = link
        parts.append(f"[{key}]" if isinstance(key, int) else f".{str(key)[:40]}")
    return "$" + "".join(reversed(parts))


def decode_request(body: bytes, media_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpDecodeError(f"body is not an ExportTraceServiceRequest: {exc}") from exc
        return request
    try:
        payload = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise OtlpDecodeError(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise OtlpDecodeError("body must be a JSON object (ExportTraceServiceRequest)")
    try:
        _hex_ids_to_base64(payload)
        json_format.ParseDict(payload, request, ignore_unknown_fields=True)
    except RecursionError as exc:
        raise OtlpDecodeError("body is nested too deeply") from exc
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OtlpDecodeError(f"body is not an OTLP JSON ExportTraceServiceRequest: {exc}") from exc
    return request


def encode_response(rejected: int, error_message: str, media_type: str) -> bytes:
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=error_message)
        )
    if media_type == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def encode_status(code: int, message: str, media_type: str) -> bytes:
    status = status_pb2.Status(code=code, message=message)
    if media_type == JSON:
        return json_format.MessageToJson(status, indent=None).encode()
    encoded: bytes = status.SerializeToString()
    return encoded
