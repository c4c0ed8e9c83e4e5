"""The fast path of CloudEvents decode + validate, for bodies whose events are all valid.

``cloudevents.decode_events`` decodes each element on its own (envelope, then data by
type) and checks every field generically, so that an error can name its element and field:
about 10 µs per event. Most batches have no error at all. This module decodes a whole
body in one msgspec call, into envelope structs tagged by ``type`` whose ``data`` is the
same struct ``decode_events`` uses, then applies the same checks written out per event
type, with the texts that repeat (models, teams, job ids) checked once per batch.

It can only say "all valid, here are the events" or "not sure": on any decode error or
failed check, ``decode_events`` runs on the body and produces the errors (or, where this
module is stricter than needed, the events). tests/durability/test_fast_decode.py checks
on generated valid and invalid bodies that whatever this path accepts, ``decode_events``
accepts with equal events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Final

import msgspec

from collectors import cloudevents as ce
from collectors import validate as v
from meterhouse import records as r
from meterhouse.keys import ApiKey

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_MAX_REMEMBERED: Final = 50_000
_ZERO: Final = Decimal(0)


class _Envelope(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    specversion: str
    id: str
    source: str
    subject: str | None = None
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None


class _ModelCall(_Envelope, kw_only=True, frozen=True, tag=r.MODEL_CALL):
    event_type: ClassVar[str] = r.MODEL_CALL
    data: r.ModelCallData


class _JobDefinition(_Envelope, kw_only=True, frozen=True, tag=r.JOB_DEFINITION):
    event_type: ClassVar[str] = r.JOB_DEFINITION
    data: r.JobDefinitionData


class _JobRun(_Envelope, kw_only=True, frozen=True, tag=r.JOB_RUN):
    event_type: ClassVar[str] = r.JOB_RUN
    data: r.JobRunData


class _JobLog(_Envelope, kw_only=True, frozen=True, tag=r.JOB_LOG):
    event_type: ClassVar[str] = r.JOB_LOG
    data: r.JobLogData


class _ApiCall(_Envelope, kw_only=True, frozen=True, tag=r.API_CALL):
    event_type: ClassVar[str] = r.API_CALL
    data: r.ApiCallData


_Any = _ModelCall | _JobDefinition | _JobRun | _JobLog | _ApiCall
_BATCH: Final = msgspec.json.Decoder(list[_Any])
_ONE: Final = msgspec.json.Decoder(_Any)


class _Texts:
    """Texts already found valid in this batch, so repeated ones cost a set lookup."""

    def __init__(self) -> None:
        self.short: set[str] = set()
        self.tenants: set[str] = {""}

    def short_ok(self, value: str) -> bool:
        """At most 256 characters, no control character (v._check_text's rule)."""
        if value in self.short:
            return True
        if len(value) > v.MAX_ID_LENGTH or _CONTROL.search(value):
            return False
        if len(self.short) < _MAX_REMEMBERED:
            self.short.add(value)
        return True

    def required_ok(self, value: str) -> bool:
        return bool(value) and self.short_ok(value)

    def tenant_ok(self, value: str) -> bool:
        """Empty, or an id by the tenants' rule."""
        if value in self.tenants:
            return True
        if not v.TENANT_ID.match(value):
            return False
        if len(self.tenants) < _MAX_REMEMBERED:
            self.tenants.add(value)
        return True


def _long_ok(value: str, field: str) -> bool:
    return len(value) <= v.LONG_TEXT[field]


def _owner_ok(data: r.EventData, texts: _Texts) -> bool:
    return (
        texts.tenant_ok(data.account_id)
        and texts.tenant_ok(data.team_id)
        and texts.tenant_ok(data.project_id)
        and texts.short_ok(data.user_id)
    )


def _model_call_ok(data: r.ModelCallData, texts: _Texts) -> bool:
    top = v.MAX_TOKENS
    return (
        _owner_ok(data, texts)
        and texts.required_ok(data.model)
        and texts.short_ok(data.provider)
        and texts.short_ok(data.operation)
        and 0 <= data.input_tokens <= top
        and 0 <= data.output_tokens <= top
        and 0 <= data.cache_read_tokens <= top
        and 0 <= data.cache_write_tokens <= top
        and 0 <= data.reasoning_tokens <= top
        and data.cache_read_tokens + data.cache_write_tokens <= data.input_tokens
    )


def _job_definition_ok(data: r.JobDefinitionData, texts: _Texts) -> bool:
    return (
        _owner_ok(data, texts)
        and texts.required_ok(data.job_id)
        and texts.required_ok(data.name)
        and texts.short_ok(data.schedule)
        and texts.short_ok(data.kind)
        and texts.short_ok(data.status)
        and 0 <= data.typical_duration_ms <= v.MAX_DURATION_MS
    )


def _job_run_ok(
    data: r.JobRunData, texts: _Texts, event_time: datetime, now: datetime, limits: v.Limits
) -> bool:
    started, duration = data.started_at, data.duration_seconds
    return (
        _owner_ok(data, texts)
        and texts.required_ok(data.job_id)
        and texts.required_ok(data.run_id)
        and texts.short_ok(data.kind)
        and texts.short_ok(data.status)
        and texts.short_ok(data.error_type)
        and _long_ok(data.error_message, "error_message")
        and (
            started is None
            or (
                v.check_time(0, "data.started_at", started, now, limits) is None
                and started <= event_time
            )
        )
        and (
            duration is None
            or (duration.is_finite() and _ZERO <= duration <= v.MAX_DURATION_SECONDS)
        )
    )


def _job_log_ok(data: r.JobLogData, texts: _Texts) -> bool:
    return (
        _owner_ok(data, texts)
        and texts.required_ok(data.job_id)
        and texts.required_ok(data.run_id)
        and texts.short_ok(data.kind)
        and texts.short_ok(data.level)
        and bool(data.message)
        and _long_ok(data.message, "message")
        and texts.short_ok(data.error_type)
        and _long_ok(data.error_message, "error_message")
        and _long_ok(data.stack_trace, "stack_trace")
    )


def _api_call_ok(data: r.ApiCallData, texts: _Texts) -> bool:
    return (
        _owner_ok(data, texts)
        and texts.required_ok(data.route)
        and texts.short_ok(data.method)
        and 100 <= data.status_code <= 599
        and 0 <= data.duration_ms <= v.MAX_DURATION_MS
    )


def decode_valid(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> list[r.Event] | None:
    """Every event of the body when all are valid; None when any might not be."""
    start = body.lstrip()[:1]
    try:
        if start == b"[" and media_type != ce.SINGLE:
            envelopes = _BATCH.decode(body)
        elif start == b"{" and media_type != ce.BATCH:
            envelopes = [_ONE.decode(body)]
        else:
            return None
    except (msgspec.MsgspecError, RecursionError):
        return None
    if len(envelopes) > limits.max_batch_events:
        return None
    texts = _Texts()
    events: list[r.Event] = []
    oldest, newest = now - limits.max_age, now + limits.max_future
    key_source, key_account = key.source, key.account_id
    sources: set[str] = set()
    append = events.append
    for envelope in envelopes:
        data = envelope.data
        time = envelope.time or now
        if (
            envelope.specversion != "1.0"
            or envelope.datacontenttype not in (None, ce.JSON)
            or not oldest <= time <= newest
            or not envelope.id
            or len(envelope.id) > v.MAX_ID_LENGTH
            or _CONTROL.search(envelope.id)
        ):
            return None
        source = envelope.source
        if source not in sources:
            if not texts.required_ok(source) or (key_source and source != key_source):
                return None
            sources.add(source)
        if not _data_ok(envelope, texts, time, now, limits):
            return None
        named = data.account_id or envelope.subject or ""
        account = named or key_account
        if not account or (named and not texts.tenant_ok(named)):
            return None
        if key_account and account != key_account:
            return None
        if data.account_id != account:
            data = msgspec.structs.replace(data, account_id=account)
        append(
            r.Event(
                id=envelope.id,
                source=source,
                type=envelope.event_type,
                time=time,
                data=data,
                account_id=account,
            )
        )
    return events


def _data_ok(
    envelope: _Any, texts: _Texts, time: datetime, now: datetime, limits: v.Limits
) -> bool:
    if isinstance(envelope, _ModelCall):
        return _model_call_ok(envelope.data, texts)
    if isinstance(envelope, _JobLog):
        return _job_log_ok(envelope.data, texts)
    if isinstance(envelope, _JobRun):
        return _job_run_ok(envelope.data, texts, time, now, limits)
    if isinstance(envelope, _ApiCall):
        return _api_call_ok(envelope.data, texts)
    return _job_definition_ok(envelope.data, texts)


Decode = Callable[[bytes, str, ApiKey, datetime, v.Limits], ce.Decoded]


def decode_events(
    body: bytes, media_type: str, key: ApiKey, now: datetime, limits: v.Limits
) -> ce.Decoded:
    """``cloudevents.decode_events``, fast when every event is valid."""
    events = decode_valid(body, media_type, key, now, limits)
    if events is None:
        return ce.decode_events(body, media_type, key, now, limits)
    return ce.Decoded(events=events, types=[event.type for event in events])
