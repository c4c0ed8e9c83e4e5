"""Checks past what the types say: ranges, sizes, time window, owner, the key's scope.

msgspec has already checked every field's type while decoding. What is left is what a
type cannot say: token counts are not negative nor absurd, cached tokens do not exceed the
input they are part of, the time is neither far in the future nor absurdly old, ids are
not empty, and the event belongs to an account the key may send for. The limits are
documented in docs/events.md ("Limits").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import msgspec

from collectors.problems import FieldError
from meterhouse import records as r
from meterhouse.keys import ApiKey
from meterhouse.settings import Settings

MAX_TOKENS: Final = 100_000_000  # per count, per model call: far above any context window
MAX_DURATION_SECONDS: Final = Decimal(31 * 86_400)  # one job run, or a job's typical run
MAX_DURATION_MS: Final = 31 * 86_400 * 1000
MAX_ID_LENGTH: Final = 256
MAX_TEXT_LENGTH: Final = 65_536  # log message, error message
MAX_STACK_TRACE_LENGTH: Final = 262_144

TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MILLISECOND_FIELDS: Final = ("typical_duration_ms", "duration_ms")
REQUIRED_TEXT: Final = frozenset({"model", "job_id", "run_id", "name", "route", "message"})
LONG_TEXT: Final = {
    "message": MAX_TEXT_LENGTH,
    "error_message": MAX_TEXT_LENGTH,
    "stack_trace": MAX_STACK_TRACE_LENGTH,
}
# Account, team and project ids follow the tenants' rule (meterhouse/tenants.py), so
# every usage row can be joined to the tenant it names.
TENANT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
TENANT_ID_RULE: Final = (
    "1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Request and event limits in force (settings MH_INGEST_*)."""

    max_body_bytes: int = 5 * 1024 * 1024
    max_batch_events: int = 10_000
    max_future: timedelta = timedelta(days=1)
    max_age: timedelta = timedelta(days=400)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_body_bytes=settings.ingest_max_body_bytes,
            max_batch_events=settings.ingest_max_batch_events,
            max_future=timedelta(seconds=settings.ingest_max_future_seconds),
            max_age=timedelta(days=settings.ingest_max_age_days),
        )


def check_time(
    index: int, field: str, value: datetime, now: datetime, limits: Limits
) -> FieldError | None:
    if value.tzinfo is None:
        return FieldError(
            index,
            field,
            "needs a UTC offset (RFC 3339), e.g. 2026-01-15T09:30:00Z",
            "invalid_field",
        )
    if value > now + limits.max_future:
        return FieldError(
            index,
            field,
            f"{value.isoformat()} is more than {_span(limits.max_future)} ahead of the "
            f"server clock ({now.isoformat(timespec='seconds')})",
            "time_out_of_range",
        )
    if value < now - limits.max_age:
        return FieldError(
            index,
            field,
            f"{value.isoformat()} is older than {_span(limits.max_age)} (MH_INGEST_MAX_AGE_DAYS)",
            "time_out_of_range",
        )
    return None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    return f"{seconds} second(s)"


def check_envelope_text(index: int, field: str, value: str) -> FieldError | None:
    if not value:
        return FieldError(index, field, "must not be empty", "invalid_field")
    if len(value) > MAX_ID_LENGTH:
        return FieldError(
            index, field, f"is longer than {MAX_ID_LENGTH} characters", "invalid_field"
        )
    if _CONTROL.search(value):
        return FieldError(index, field, "must not contain control characters", "invalid_field")
    return None


def check_tenant_id(index: int, field: str, value: str) -> FieldError | None:
    if value and not TENANT_ID.match(value):
        return FieldError(
            index, field, f"{value[:80]!r} is not an id: use {TENANT_ID_RULE}", "invalid_field"
        )
    return None


def _check_text(index: int, name: str, value: str) -> FieldError | None:
    field = f"data.{name}"
    if name in ("account_id", "team_id", "project_id"):
        return check_tenant_id(index, field, value)
    if name in REQUIRED_TEXT and not value:
        return FieldError(index, field, "must not be empty", "invalid_field")
    limit = LONG_TEXT.get(name, MAX_ID_LENGTH)
    if len(value) > limit:
        return FieldError(index, field, f"is longer than {limit} characters", "invalid_field")
    if name not in LONG_TEXT and _CONTROL.search(value):
        return FieldError(index, field, "must not contain control characters", "invalid_field")
    return None


def _check_int(index: int, name: str, value: int) -> FieldError | None:
    field = f"data.{name}"
    if name in TOKEN_FIELDS:
        low, high = 0, MAX_TOKENS
    elif name in MILLISECOND_FIELDS:
        low, high = 0, MAX_DURATION_MS
    elif name == "status_code":
        low, high = 100, 599
    else:
        return None
    if not low <= value <= high:
        return FieldError(
            index, field, f"{value} is outside the allowed range {low}..{high}", "out_of_range"
        )
    return None


def _check_decimal(index: int, name: str, value: Decimal) -> FieldError | None:
    field = f"data.{name}"
    if not value.is_finite() or not Decimal(0) <= value <= MAX_DURATION_SECONDS:
        return FieldError(
            index,
            field,
            f"{value} is outside the allowed range 0..{MAX_DURATION_SECONDS} seconds",
            "out_of_range",
        )
    return None


def check_data(
    index: int, data: r.EventData, event_time: datetime, now: datetime, limits: Limits
) -> list[FieldError]:
    """Every range, size and consistency problem of one event's data."""
    errors: list[FieldError] = []
    for name in data.__struct_fields__:
        value = getattr(data, name)
        found: FieldError | None = None
        if isinstance(value, bool):
            continue
        if isinstance(value, str):
            found = _check_text(index, name, value)
        elif isinstance(value, int):
            found = _check_int(index, name, value)
        elif isinstance(value, Decimal):
            found = _check_decimal(index, name, value)
        elif isinstance(value, datetime):
            found = check_time(index, f"data.{name}", value, now, limits)
            if found is None and value > event_time:
                found = FieldError(
                    index, f"data.{name}", "is later than the event time", "out_of_range"
                )
        if found is not None:
            errors.append(found)
    if isinstance(data, r.ModelCallData) and not errors:
        cached = data.cache_read_tokens + data.cache_write_tokens
        if cached > data.input_tokens:
            errors.append(
                FieldError(
                    index,
                    "data.cache_read_tokens",
                    f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                    f"({data.input_tokens}), which include them",
                    "out_of_range",
                )
            )
    return errors


def resolve_account(
    index: int, data: r.EventData, subject: str | None, key: ApiKey
) -> tuple[str, FieldError | None]:
    """data.account_id wins over the CloudEvents subject; the key's account fills a gap."""
    if data.account_id:
        account, field = data.account_id, "data.account_id"
    elif subject:
        account, field = subject, "subject"
    elif key.account_id:
        return key.account_id, None
    else:
        return "", FieldError(
            index,
            "subject",
            "no account: set subject (or data.account_id) to the account id",
            "invalid_field",
        )
    invalid = check_tenant_id(index, field, account)
    if invalid is not None:
        return "", invalid
    if key.account_id and account != key.account_id:
        return "", FieldError(
            index,
            field,
            f"this key may only send events of account {key.account_id!r}, not {account!r}",
            "scope",
        )
    return account, None


def check_source(index: int, source: str, key: ApiKey) -> FieldError | None:
    if key.source and source != key.source:
        return FieldError(
            index,
            "source",
            f"this key may only send events with source {key.source!r}, not {source[:80]!r}",
            "scope",
        )
    return None


def with_account(data: r.EventData, account_id: str) -> r.EventData:
    """The data as stored: its account_id is the one the event was resolved to."""
    if data.account_id == account_id:
        return data
    return msgspec.structs.replace(data, account_id=account_id)
