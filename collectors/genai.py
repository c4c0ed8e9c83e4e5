"""OpenTelemetry GenAI spans -> model-call usage events.

A span is a model call when it names a model (``gen_ai.response.model`` or
``gen_ai.request.model``) and its ``gen_ai.operation.name`` is a model operation (chat,
text_completion, generate_content, embeddings) or absent. Agent and tool spans
(invoke_agent, create_agent, execute_tool) are skipped even when they carry token counts:
they repeat the usage of the model calls beneath them, and billing them too would bill
twice. Other spans are accepted and ignored.

Identity: the event id is ``<trace id>-<span id>`` in hex (unique, and the same in every
retry of an export), the source is the ingest key's source. Owner attributes are read
from the span first, then its resource (docs/events.md, "OTLP traces").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collectors import validate as v
from collectors.problems import FieldError
from meterhouse import records as r
from meterhouse.access.keys import ApiKey

MODEL_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
OTLP_SOURCE: Final = "otlp"  # used when the key is not scoped to a source

# (ModelCallData field, attribute names in order of preference)
TOKEN_ATTRIBUTES: Final = (
    ("input_tokens", ("gen_ai.usage.input_tokens",)),
    ("output_tokens", ("gen_ai.usage.output_tokens",)),
    ("cache_read_tokens", ("gen_ai.usage.cache_read.input_tokens",)),
    ("cache_write_tokens", ("gen_ai.usage.cache_creation.input_tokens",)),
    ("reasoning_tokens", ("gen_ai.usage.reasoning.output_tokens",)),
)
MODEL_ATTRIBUTES: Final = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDER_ATTRIBUTES: Final = ("gen_ai.provider.name", "gen_ai.system")
OPERATION_ATTRIBUTE: Final = "gen_ai.operation.name"
ACCOUNT_ATTRIBUTES: Final = ("meterhouse.account.id",)
TEAM_ATTRIBUTES: Final = ("meterhouse.team.id",)
PROJECT_ATTRIBUTES: Final = ("meterhouse.project.id",)
USER_ATTRIBUTES: Final = ("meterhouse.user.id", "user.id", "enduser.id")

Scalar = str | int | float | bool


def _scalar(value: AnyValue) -> Scalar | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return None  # arrays, maps and bytes carry nothing meterhouse reads


def attribute_map(attributes: Iterable[KeyValue]) -> dict[str, Scalar | None]:
    return {item.key: _scalar(item.value) for item in attributes}


@dataclass(frozen=True)
class SpanAttributes:
    """A span's attributes over its resource's: the span's value wins."""

    span: Mapping[str, Scalar | None]
    resource: Mapping[str, Scalar | None]

    def first(self, names: tuple[str, ...]) -> tuple[str, Scalar | None]:
        for layer in (self.span, self.resource):
            for name in names:
                if name in layer and layer[name] not in (None, ""):
                    return name, layer[name]
        return names[0], None

    def text(self, names: tuple[str, ...]) -> str:
        _, value = self.first(names)
        return value if isinstance(value, str) else ""


def is_model_call(attrs: SpanAttributes) -> bool:
    _, model = attrs.first(MODEL_ATTRIBUTES)
    if model is None:
        return False
    _, operation = attrs.first((OPERATION_ATTRIBUTE,))
    return operation is None or operation in MODEL_OPERATIONS


def _count(
    attrs: SpanAttributes, names: tuple[str, ...], index: int
) -> tuple[int, FieldError | None]:
    name, value = attrs.first(names)
    if value is None:
        return 0, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0, FieldError(index, name, f"must be an integer, got {value!r:.80}", "invalid_field")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return 0, FieldError(index, name, f"must be an integer, got {value!r}", "invalid_field")
        value = int(value)
    return int(value), None


def _time(span: Span) -> datetime | None:
    nanos = span.end_time_unix_nano or span.start_time_unix_nano
    if not nanos:
        return None
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _ids(span: Span, index: int) -> tuple[str, FieldError | None]:
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or not any(trace_id):
        return "", FieldError(index, "traceId", "must be 16 bytes, not all zero", "invalid_field")
    if len(span_id) != 8 or not any(span_id):
        return "", FieldError(index, "spanId", "must be 8 bytes, not all zero", "invalid_field")
    return f"{trace_id.hex()}-{span_id.hex()}", None


def _account(attrs: SpanAttributes, key: ApiKey, index: int) -> tuple[str, FieldError | None]:
    name, value = attrs.first(ACCOUNT_ATTRIBUTES)
    account = value if isinstance(value, str) else ""
    if not account:
        if key.account_id:
            return key.account_id, None
        return "", FieldError(
            index,
            name,
            "no account: set this attribute on the span or its resource",
            "invalid_field",
        )
    if (problem := v.check_tenant_id(index, name, account)) is not None:
        return "", problem
    if key.account_id and account != key.account_id:
        return "", FieldError(
            index, name, f"this key may only send usage of account {key.account_id!r}", "scope"
        )
    return account, None


def span_event(
    index: int,
    span: Span,
    attrs: SpanAttributes,
    key: ApiKey,
    now: datetime,
    limits: v.Limits,
) -> tuple[r.Event | None, list[FieldError]]:
    """The usage event of one model-call span, or why the span is rejected."""
    errors: list[FieldError] = []
    event_id, problem = _ids(span, index)
    if problem:
        errors.append(problem)
    when = _time(span)
    if when is None:
        errors.append(FieldError(index, "endTimeUnixNano", "span has no time", "invalid_field"))
    elif (problem := v.check_time(index, "endTimeUnixNano", when, now, limits)) is not None:
        errors.append(problem)
    counts: dict[str, int] = {}
    for field, names in TOKEN_ATTRIBUTES:
        counts[field], problem = _count(attrs, names, index)
        if problem:
            errors.append(problem)
    account, problem = _account(attrs, key, index)
    if problem:
        errors.append(problem)
    if errors or when is None:
        return None, errors
    data = r.ModelCallData(
        account_id=account,
        team_id=attrs.text(TEAM_ATTRIBUTES),
        project_id=attrs.text(PROJECT_ATTRIBUTES),
        user_id=attrs.text(USER_ATTRIBUTES),
        model=attrs.text(MODEL_ATTRIBUTES),
        provider=attrs.text(PROVIDER_ATTRIBUTES),
        operation=attrs.text((OPERATION_ATTRIBUTE,)) or "chat",
        **counts,
    )
    problems = v.check_data(index, data, when, now, limits)
    if problems:
        return None, [_attribute_names(p) for p in problems]
    event = r.Event(
        id=event_id,
        source=key.source or OTLP_SOURCE,
        type=r.MODEL_CALL,
        time=when,
        data=data,
        account_id=account,
    )
    return event, []


_FIELD_ATTRIBUTE: Final = {
    "data.model": MODEL_ATTRIBUTES[0],
    "data.provider": PROVIDER_ATTRIBUTES[0],
    "data.operation": OPERATION_ATTRIBUTE,
    "data.team_id": TEAM_ATTRIBUTES[0],
    "data.project_id": PROJECT_ATTRIBUTES[0],
    "data.user_id": USER_ATTRIBUTES[0],
    **{f"data.{field}": names[0] for field, names in TOKEN_ATTRIBUTES},
}


def _attribute_names(problem: FieldError) -> FieldError:
    """Errors about a span name the attribute the sender set, not our field."""
    field = _FIELD_ATTRIBUTE.get(problem.field, problem.field)
    return FieldError(problem.index, field, problem.message, problem.reason)
