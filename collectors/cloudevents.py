"""CloudEvents in (JSON format, OpenMeter-compatible): bytes -> validated events.

A body is one event (``application/cloudevents+json``), an array of events
(``application/cloudevents-batch+json``), or either (``application/json``). Each element
is decoded on its own, so an error names the element's index. The envelope is decoded
first; ``data`` stays raw until the ``type`` says which struct of meterhouse/records.py
it must decode into (msgspec, strict: wrong types and unknown fields are errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final

import msgspec

from collectors import validate as v
from collectors.problems import MAX_REPORTED_ERRORS, FieldError, Reason, from_msgspec
from meterhouse import records as r
from meterhouse.keys import ApiKey

SINGLE: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
JSON: Final = "application/json"
MEDIA_TYPES: Final = (SINGLE, BATCH, JSON)
_NO_DATA: Final = msgspec.Raw(b"")
_TOO_DEEP: Final = "JSON is nested too deeply"


class Envelope(msgspec.Struct, kw_only=True, frozen=True):
    """CloudEvents 1.0 context attributes; extension attributes are allowed and ignored."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: msgspec.Raw = _NO_DATA


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


def split_body(body: bytes, media_type: str, max_events: int) -> list[msgspec.Raw]:
    """The raw JSON of each element. Raises BodyError for a body that is not events."""
    start = body.lstrip()[:1]
    if start == b"[" and media_type != SINGLE:
        try:
            elements = _BATCH_DECODER.decode(body)
        except msgspec.MsgspecError as exc:
            raise BodyError(from_msgspec(None, "", exc)) from exc
        except RecursionError as exc:
            raise BodyError(FieldError(None, "", _TOO_DEEP, "malformed")) from exc
    elif start == b"{" and media_type != BATCH:
        elements = [msgspec.Raw(body)]
    else:
        expected = {SINGLE: "a JSON object", BATCH: "a JSON array"}.get(
            media_type, "a JSON object or array"
        )
        raise BodyError(FieldError(None, "", f"{media_type} body must be {expected}", "malformed"))
    if len(elements) > max_events:
        raise BodyError(
            FieldError(
                None,
                "",
                f"{len(elements)} events in one request; at most {max_events} "
                "(MH_INGEST_MAX_BATCH_EVENTS)",
                "malformed",
            ),
            too_many=True,
        )
    return elements


def decode_event(
    index: int, raw: msgspec.Raw, key: ApiKey, now: datetime, limits: v.Limits
) -> tuple[r.Event | None, list[FieldError], str]:
    """One element: the event, or its errors; and its type for metrics."""
    try:
        envelope = _ENVELOPE_DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        return None, [from_msgspec(index, "", exc)], "unknown"
    except RecursionError:
        return None, [FieldError(index, "", _TOO_DEEP, "malformed")], "unknown"
    errors: list[FieldError] = []
    event_type = envelope.type if envelope.type in r.DATA_TYPES else "unknown"
    if envelope.specversion != "1.0":
        errors.append(FieldError(index, "specversion", 'must be "1.0"', "invalid_field"))
    for name, value in (("id", envelope.id), ("source", envelope.source)):
        if (problem := v.check_envelope_text(index, name, value)) is not None:
            errors.append(problem)
    if envelope.datacontenttype not in (None, JSON):
        errors.append(
            FieldError(index, "datacontenttype", f'must be "{JSON}" or absent', "invalid_field")
        )
    if (problem := v.check_source(index, envelope.source, key)) is not None:
        errors.append(problem)
    time = envelope.time or now
    if (problem := v.check_time(index, "time", time, now, limits)) is not None:
        errors.append(problem)
    decoder = _DATA_DECODERS.get(envelope.type)
    if decoder is None:
        known = ", ".join(r.EVENT_TYPES)
        errors.append(
            FieldError(
                index,
                "type",
                f"unknown event type {envelope.type[:120]!r}; known: {known}",
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
    errors.extend(v.check_data(index, data, time, now, limits))
    account, problem = v.resolve_account(index, data, envelope.subject, key)
    if problem is not None:
        errors.append(problem)
    if errors:
        return None, errors, event_type
    event = r.Event(
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        time=time,
        data=v.with_account(data, account),
        account_id=account,
    )
    return event, [], event_type


def decode_events(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> Decoded:
    """All-or-nothing: ``errors`` empty means every event is valid."""
    decoded = Decoded()
    for index, raw in enumerate(split_body(body, media_type, limits.max_batch_events)):
        event, errors, event_type = decode_event(index, raw, key, now, limits)
        decoded.types.append(event_type)
        if event is not None:
            decoded.events.append(event)
            continue
        decoded.invalid.append(index)
        decoded.reasons.append(errors[0].reason)
        room = MAX_REPORTED_ERRORS - len(decoded.errors)
        decoded.errors.extend(errors[: max(room, 0)])
    return decoded
