"""The decoder's two steps agree: whatever the one-call step decides about a body (events,
or errors naming index and field), the element-by-element step decides the same."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import cloudevents as ce
from collectors.validate import Limits
from meterhouse.access.keys import ApiKey
from meterhouse.demo.generator import generate
from meterhouse.demo.via_api import cloud_event
from meterhouse.records import DATA_TYPES

NOW = datetime.now(UTC)
LIMITS = Limits(max_batch_events=50, max_age=timedelta(days=30))
EVENTS = [
    msgspec.to_builtins(cloud_event(e))
    for e in generate(NOW - timedelta(hours=1), days=3, scale=1).events[-400:]
]


def key(source: str = "", account: str = "") -> ApiKey:
    return ApiKey(
        key_id="0" * 16,
        purpose="ingest",
        source=source,
        account_id=account,
        description="",
        created_at=NOW,
        expires_at=None,
        revoked_at=None,
    )


KEYS = (key(), key("demo.meterhouse"), key("other"), key("", "acme"), key("demo.meterhouse", "x"))
LATER = (NOW + timedelta(hours=2)).isoformat()
TEXT = ("", " ", "a\x01b", "x" * 300, 5, None)
TENANT = ("", "bad id!", "x" * 130, "-lead", 7)
COUNT = (-1, 0, 10**9, True, "12", 2.5, None)
TIME = ("2026-01-01T00:00:00", "2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z", LATER, "x", 3)
# (where, field, bad values): each a way an event can be wrong, or right in a new way.
MUTATIONS: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    ("envelope", "specversion", ("0.3", "", 1)),
    ("envelope", "id", TEXT),
    ("envelope", "source", (*TEXT, "other", "demo.meterhouse")),
    ("envelope", "type", ("com.meterhouse.nope", "", 1, "com.meterhouse.job.log")),
    ("envelope", "subject", (*TENANT, "acme", "x")),
    ("envelope", "time", (*TIME, None)),
    ("envelope", "datacontenttype", ("text/plain", None, "application/json")),
    ("data", "account_id", (*TENANT, "acme", "x")),
    ("data", "team_id", TENANT),
    ("data", "project_id", TENANT),
    ("data", "user_id", TEXT),
    ("data", "model", TEXT),
    ("data", "provider", TEXT),
    ("data", "operation", TEXT),
    ("data", "input_tokens", COUNT),
    ("data", "output_tokens", COUNT),
    ("data", "cache_read_tokens", (*COUNT, 10**6)),
    ("data", "cache_write_tokens", (*COUNT, 10**6)),
    ("data", "reasoning_tokens", COUNT),
    ("data", "job_id", TEXT),
    ("data", "run_id", TEXT),
    ("data", "name", TEXT),
    ("data", "schedule", TEXT),
    ("data", "kind", ("nope", "", 3)),
    ("data", "status", ("nope", "", "paused", "running")),
    ("data", "level", ("nope", "")),
    ("data", "message", ("", "m" * 70_000, "tab\there", 4)),
    ("data", "error_type", TEXT),
    ("data", "error_message", ("x" * 70_000, "ok\n")),
    ("data", "stack_trace", ("x" * 270_000,)),
    ("data", "started_at", (*TIME, None)),
    ("data", "duration_seconds", ("NaN", "-3.5", "1e400", "99999999", "1.5", None)),
    ("data", "route", TEXT),
    ("data", "method", TEXT),
    ("data", "status_code", (99, 600, 200, "200")),
    ("data", "duration_ms", COUNT),
    ("data", "typical_duration_ms", COUNT),
    ("data", "deleted", (1, "yes", True)),
    ("data", "unknown_field", (1,)),
)


@st.composite
def bodies(draw: st.DrawFn) -> list[Any]:
    chosen = draw(st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4))
    events = copy.deepcopy(chosen)
    for _ in range(draw(st.integers(0, 2))):
        event = draw(st.sampled_from(events))
        data_type = DATA_TYPES.get(str(event.get("type")))
        fields = {"unknown_field", *(data_type.__struct_fields__ if data_type else ())}
        relevant = [m for m in MUTATIONS if m[0] == "envelope" or m[1] in fields]
        place, field, values = draw(st.sampled_from(relevant))
        where = event if place == "envelope" else event["data"]
        if draw(st.integers(0, 9)) == 0:
            where.pop(field, None)
        else:
            where[field] = draw(st.sampled_from(values))
    return events


def _both(body: bytes, media: str, api_key: ApiKey) -> tuple[Any, ce.Decoded | None]:
    """(one-call step, element-by-element step); None where the body is not events."""
    try:
        typed = ce.decode_typed(body, media, api_key, NOW, LIMITS)
    except ce.BodyError:
        typed = None
    try:
        each = ce.decode_elements(body, media, api_key, NOW, LIMITS)
    except ce.BodyError:
        each = None
    return typed, each


def test_valid_demo_batches_take_the_one_call_step() -> None:
    body = msgspec.json.encode(EVENTS[:50])
    typed, each = _both(body, ce.BATCH, KEYS[0])
    assert each is not None and not each.errors
    assert typed == each
    assert ce.decode_events(body, ce.BATCH, KEYS[0], NOW, LIMITS) == each


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=bodies(),
    api_key=st.sampled_from(KEYS),
    media=st.sampled_from(ce.MEDIA_TYPES),
    single=st.booleans(),
)
def test_both_steps_say_the_same(
    events: list[Any], api_key: ApiKey, media: str, single: bool
) -> None:
    body = msgspec.json.encode(events[0] if single else events)
    typed, each = _both(body, media, api_key)
    if typed is not None:
        assert typed == each  # same events, same errors, types, indexes and reasons


def test_every_single_mutation_of_every_event_type() -> None:
    """Each mutation alone, on one event of each type, under each key: exhaustive."""
    samples = {event["type"]: event for event in EVENTS}
    checked = accepted = refused = 0
    for event_type, sample in samples.items():
        fields = {"unknown_field", *DATA_TYPES[event_type].__struct_fields__}
        for place, field, values in MUTATIONS:
            if place == "data" and field not in fields:
                continue
            for value in (*values, "<absent>"):
                event = copy.deepcopy(sample)
                where = event if place == "envelope" else event["data"]
                if value == "<absent>":
                    where.pop(field, None)
                else:
                    where[field] = value
                body = msgspec.json.encode([event])
                for api_key in KEYS:
                    typed, each = _both(body, ce.BATCH, api_key)
                    checked += 1
                    if typed is None:
                        continue
                    assert typed == each, (event_type, field, value)
                    accepted += not typed.errors
                    refused += bool(typed.errors)
    assert checked > 1000
    assert accepted > 50  # valid variants exist, and they take the one-call step
    assert refused > 200  # so do invalid ones whose types are right
