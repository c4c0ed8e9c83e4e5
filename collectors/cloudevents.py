"""CloudEvents in (JSON format, OpenMeter-compatible): bytes -> validated events.

A body is one event (``application/cloudevents+json``), an array of events
(``application/cloudevents-batch+json``), or either (``application/json``).

One decoder, two steps. First the whole body is decoded in one msgspec call into
envelopes tagged by ``type``, whose ``data`` is the struct of meterhouse/records.py for
that type (strict: wrong types and unknown fields are errors), and every event is checked
(collectors/validate.py). Most bodies end there. Only when that call fails, because some
element is not an event of a known type, is the body decoded again element by element,
the envelope first and ``data`` once the ``type`` says which struct it must be, so that
each error names its element's index and field; the elements that decode are checked by
the same functions. A type outside meterhouse's namespace is a free-form event
(collectors/free_form.py): its data is kept raw, for meters. tests/ingest/test_decode.py
checks that both steps say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, ClassVar, Final

import msgspec

from collectors import free_form
from collectors import validate as v
from collectors.problems import MAX_REPORTED_ERRORS, FieldError, Reason, from_msgspec
from meterhouse import records as r
from meterhouse.access.keys import ApiKey

SINGLE: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
JSON: Final = "application/json"
MEDIA_TYPES: Final = (SINGLE, BATCH, JSON)
_CONTENT_TYPES: Final = (None, JSON)
_NO_DATA: Final = msgspec.Raw(b"")
_TOO_DEEP: Final = "JSON is nested too deeply"


class Context(msgspec.Struct, kw_only=True, frozen=True):
    """CloudEvents 1.0 context attributes; extension attributes are allowed and ignored."""

    specversion: str
    id: str
    source: str
    subject: str | None = None
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None


class Envelope(Context, kw_only=True, frozen=True):
    """An element whose ``data`` is decoded once its ``type`` is known (the error step)."""

    type: str
    data: msgspec.Raw = _NO_DATA


class _Typed(Context, kw_only=True, frozen=True, tag_field="type"):
    event_type: ClassVar[str]


class _ModelCall(_Typed, kw_only=True, frozen=True, tag=r.MODEL_CALL):
    event_type: ClassVar[str] = r.MODEL_CALL
    data: r.ModelCallData


class _JobDefinition(_Typed, kw_only=True, frozen=True, tag=r.JOB_DEFINITION):
    event_type: ClassVar[str] = r.JOB_DEFINITION
    data: r.JobDefinitionData


class _JobRun(_Typed, kw_only=True, frozen=True, tag=r.JOB_RUN):
    event_type: ClassVar[str] = r.JOB_RUN
    data: r.JobRunData


class _JobLog(_Typed, kw_only=True, frozen=True, tag=r.JOB_LOG):
    event_type: ClassVar[str] = r.JOB_LOG
    data: r.JobLogData


class _ApiCall(_Typed, kw_only=True, frozen=True, tag=r.API_CALL):
    event_type: ClassVar[str] = r.API_CALL
    data: r.ApiCallData


_AnyTyped = _ModelCall | _JobDefinition | _JobRun | _JobLog | _ApiCall
_TYPED_BATCH: Final = msgspec.json.Decoder(list[_AnyTyped])
_TYPED_ONE: Final = msgspec.json.Decoder(_AnyTyped)
_ENVELOPE_DECODER: Final = msgspec.json.Decoder(Envelope)
_BATCH_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])
_DATA_DECODERS: Final = {
    event_type: msgspec.json.Decoder(data_type) for event_type, data_type in r.DATA_TYPES.items()
}


class BodyError(Exception):
    """The body as a whole cannot be read as events."""

    def __init__(self, error: FieldError, *, too_many: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.too_many = too_many


@dataclass
class Decoded:
    """The events of a body, or every problem found in it (then no event is stored)."""

    events: list[r.Event] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    types: list[str] = field(default_factory=list)  # each element's type, or "unknown"
    invalid: list[int] = field(default_factory=list)  # indexes of invalid elements
    reasons: list[Reason] = field(default_factory=list)  # first reason of each invalid one

    def add(self, index: int, event: r.Event | None, errors: list[FieldError]) -> None:
        if event is not None:
            self.events.append(event)
            return
        self.invalid.append(index)
        self.reasons.append(errors[0].reason)
        room = MAX_REPORTED_ERRORS - len(self.errors)
        self.errors.extend(errors[: max(room, 0)])


def _shape(body: bytes, media_type: str) -> str:
    """ "batch" or "single" as the body starts; BodyError when the media type forbids it."""
    start = body.lstrip()[:1]
    if start == b"[" and media_type != SINGLE:
        return "batch"
    if start == b"{" and media_type != BATCH:
        return "single"
    expected = {SINGLE: "a JSON object", BATCH: "a JSON array"}.get(
        media_type, "a JSON object or array"
    )
    raise BodyError(FieldError(None, "", f"{media_type} body must be {expected}", "malformed"))


def _count_allowed(count: int, max_events: int) -> None:
    if count > max_events:
        raise BodyError(
            FieldError(
                None,
                "",
                f"{count} events in one request; at most {max_events} (MH_INGEST_MAX_BATCH_EVENTS)",
                "malformed",
            ),
            too_many=True,
        )


def split_body(body: bytes, media_type: str, max_events: int) -> list[msgspec.Raw]:
    """The raw JSON of each element. Raises BodyError for a body that is not events."""
    if _shape(body, media_type) == "single":
        return [msgspec.Raw(body)]
    try:
        elements = _BATCH_DECODER.decode(body)
    except msgspec.MsgspecError as exc:
        raise BodyError(from_msgspec(None, "", exc)) from exc
    except RecursionError as exc:
        raise BodyError(FieldError(None, "", _TOO_DEEP, "malformed")) from exc
    _count_allowed(len(elements), max_events)
    return elements


def _context_problems(
    index: int, context: Context, key: ApiKey, now: datetime, limits: v.Limits
) -> list[FieldError]:
    """What is wrong with an element's context attributes (its time defaults to now)."""
    found = (
        None
        if context.specversion == "1.0"
        else FieldError(index, "specversion", 'must be "1.0"', "invalid_field"),
        v.check_envelope_text(index, "id", context.id),
        v.check_required_text(index, "source", context.source),
        None
        if context.datacontenttype in _CONTENT_TYPES
        else FieldError(index, "datacontenttype", f'must be "{JSON}" or absent', "invalid_field"),
        v.check_source(index, context.source, key),
        v.check_time(index, "time", context.time or now, now, limits),
    )
    return [problem for problem in found if problem is not None]


def _event(
    index: int,
    context: Context,
    event_type: str,
    data: r.EventData,
    errors: list[FieldError],
    key: ApiKey,
    now: datetime,
    limits: v.Limits,
) -> tuple[r.Event | None, list[FieldError]]:
    """The event, once its data is checked and its account resolved; or all its errors."""
    time = context.time or now
    errors.extend(v.check_data(index, data, time, now, limits))
    account, problem = v.resolve_account(index, data, context.subject, key)
    if problem is not None:
        errors.append(problem)
    if errors:
        return None, errors
    event = r.Event(
        id=context.id,
        source=context.source,
        type=event_type,
        time=time,
        data=v.with_account(data, account),
        account_id=account,
    )
    return event, errors


def decode_typed(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> Decoded | None:
    """Step one: the whole body in one call. None when some element does not decode."""
    shape = _shape(body, media_type)
    try:
        typed = _TYPED_BATCH.decode(body) if shape == "batch" else [_TYPED_ONE.decode(body)]
    except (msgspec.MsgspecError, RecursionError):
        return None
    _count_allowed(len(typed), limits.max_batch_events)
    decoded = Decoded(types=[element.event_type for element in typed])
    append = decoded.events.append
    for index, element in enumerate(typed):
        errors = _context_problems(index, element, key, now, limits)
        event, errors = _event(
            index, element, element.event_type, element.data, errors, key, now, limits
        )
        if event is not None:
            append(event)
        else:
            decoded.add(index, event, errors)
    return decoded


def decode_event(
    index: int, raw: msgspec.Raw, key: ApiKey, now: datetime, limits: v.Limits
) -> tuple[r.Event | None, list[FieldError], str]:
    """Step two, one element: the event, or its errors; and its type for metrics."""
    try:
        envelope = _ENVELOPE_DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        return None, [from_msgspec(index, "", exc)], "unknown"
    except RecursionError:
        return None, [FieldError(index, "", _TOO_DEEP, "malformed")], "unknown"
    event_type = envelope.type if envelope.type in r.DATA_TYPES else "unknown"
    errors = _context_problems(index, envelope, key, now, limits)
    decoder = _DATA_DECODERS.get(envelope.type)
    if decoder is None and free_form.claims(envelope.type):
        event, errors = free_form.event(index, envelope, errors, key, now)
        return event, errors, r.FREE_FORM
    if decoder is None:
        known = ", ".join(r.EVENT_TYPES)
        errors.append(
            FieldError(
                index,
                "type",
                f"unknown event type {envelope.type[:120]!r}: {r.RESERVED_TYPE_PREFIX}* "
                f"is meterhouse's own namespace; known: {known}",
                "unknown_type",
            )
        )
        return None, errors, event_type
    if envelope.data is _NO_DATA or bytes(envelope.data).strip() in (b"", b"null"):
        errors.append(FieldError(index, "data", f"{envelope.type} needs data", "invalid_field"))
        return None, errors, event_type
    try:
        data = decoder.decode(envelope.data)
    except msgspec.MsgspecError as exc:
        errors.append(from_msgspec(index, "data", exc))
        return None, errors, event_type
    except RecursionError:
        errors.append(FieldError(index, "data", _TOO_DEEP, "malformed"))
        return None, errors, event_type
    event, errors = _event(index, envelope, envelope.type, data, errors, key, now, limits)
    return event, errors, event_type


def decode_elements(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> Decoded:
    """Step two for a whole body: element by element, each error named."""
    decoded = Decoded()
    for index, raw in enumerate(split_body(body, media_type, limits.max_batch_events)):
        event, errors, event_type = decode_event(index, raw, key, now, limits)
        decoded.types.append(event_type)
        decoded.add(index, event, errors)
    return decoded


def decode_events(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> Decoded:
    """All-or-nothing: ``errors`` empty means every event is valid. Raises BodyError for a
    body that is not events at all."""
    decoded = decode_typed(body, media_type, key, now, limits)
    if decoded is None:
        return decode_elements(body, media_type, key, now, limits)
    return decoded
