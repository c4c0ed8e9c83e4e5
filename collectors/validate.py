"""Checks past what the types say: ranges, sizes, time window, owner, the key's scope.

msgspec has already checked every field's type while decoding. What is left is what a
type cannot say: token counts are not negative nor absurd, cached tokens do not exceed the
input they are part of, the time is neither far in the future nor absurdly old, ids are
not empty, and the event belongs to an account the key may send for. The limits are
documented in docs/events.md ("Limits").
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, get_type_hints

import msgspec

from collectors.problems import FieldError
from meterhouse import records as r
from meterhouse.access.keys import ApiKey
from meterhouse.settings import Settings

MAX_TOKENS: Final = 100_000_000  # per count, per model call: far above any context window
MAX_DURATION_SECONDS: Final = Decimal(31 * 86_400)  # one job run, or a job's typical run
MAX_DURATION_MS: Final = 31 * 86_400 * 1000
_NO_SECONDS: Final = Decimal(0)
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
# Account, team and project ids follow the tenants' rule (meterhouse/access/tenants.py), so
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


Check = Callable[[int, str, Any], FieldError | None]
"""(event index, field as named in errors, value) -> the problem, or None when valid."""
Values = Callable[[Any], tuple[Any, ...]]
TENANT_FIELDS: Final = frozenset({"account_id", "team_id", "project_id"})


class _Known:
    """Values already found valid: models, teams, users and routes repeat from event to
    event, so most events need a set lookup or two. Only an accelerator (a miss checks
    each field in full), so request threads may share it; bounded."""

    LIMIT: Final = 50_000

    def __init__(self, *always: Hashable) -> None:
        self.always = always
        self.values: set[Hashable] = set(always)

    def add(self, value: Hashable) -> None:
        if len(self.values) >= self.LIMIT:
            self.values = set(self.always)  # swapped whole: readers see one set or the other
        self.values.add(value)


_TENANTS: Final = _Known("")  # an empty team or project is valid
_TEXTS: Final = _Known()  # never "": a required text must not pass as known
_OPTIONAL_TEXTS: Final = _Known("")


def check_tenant_id(index: int, field: str, value: str) -> FieldError | None:
    """Empty (no team, no project), or an id by the tenants' rule."""
    if value in _TENANTS.values:
        return None
    if not TENANT_ID.match(value):
        return FieldError(
            index, field, f"{value[:80]!r} is not an id: use {TENANT_ID_RULE}", "invalid_field"
        )
    _TENANTS.add(value)
    return None


def _text_problem(index: int, field: str, value: str) -> FieldError | None:
    """At most MAX_ID_LENGTH characters, none a control character."""
    if len(value) > MAX_ID_LENGTH:
        return FieldError(
            index, field, f"is longer than {MAX_ID_LENGTH} characters", "invalid_field"
        )
    # isprintable() is false for every control character (and for some other text, which
    # the pattern then clears): the usual id costs no regular expression.
    if not value.isprintable() and _CONTROL.search(value):
        return FieldError(index, field, "must not contain control characters", "invalid_field")
    return None


def check_envelope_text(index: int, field: str, value: str) -> FieldError | None:
    """An event's id: required, short, no control character. Not remembered: ids are new
    in every event."""
    if not value:
        return FieldError(index, field, "must not be empty", "invalid_field")
    return _text_problem(index, field, value)


def check_short_text(index: int, field: str, value: str) -> FieldError | None:
    """An optional short text (provider, user, schedule ...)."""
    if value in _OPTIONAL_TEXTS.values:
        return None
    problem = _text_problem(index, field, value)
    if problem is None:
        _OPTIONAL_TEXTS.add(value)
        if value:
            _TEXTS.add(value)
    return problem


def check_required_text(index: int, field: str, value: str) -> FieldError | None:
    """A required short text (model, job and run ids, a source ...)."""
    if value in _TEXTS.values:
        return None
    if not value:
        return FieldError(index, field, "must not be empty", "invalid_field")
    return check_short_text(index, field, value)


def _check_long_text(limit: int, required: bool) -> Check:
    """Free text (a log line, an error, a stack trace): control characters allowed."""

    def check(index: int, field: str, value: str) -> FieldError | None:
        if required and not value:
            return FieldError(index, field, "must not be empty", "invalid_field")
        if len(value) > limit:
            return FieldError(index, field, f"is longer than {limit} characters", "invalid_field")
        return None

    return check


def _check_range(low: int, high: int) -> Check:
    def check(index: int, field: str, value: int) -> FieldError | None:
        if low <= value <= high:
            return None
        return FieldError(
            index, field, f"{value} is outside the allowed range {low}..{high}", "out_of_range"
        )

    return check


def _check_seconds(index: int, field: str, value: Decimal | None) -> FieldError | None:
    if value is None or (value.is_finite() and _NO_SECONDS <= value <= MAX_DURATION_SECONDS):
        return None
    return FieldError(
        index,
        field,
        f"{value} is outside the allowed range 0..{MAX_DURATION_SECONDS} seconds",
        "out_of_range",
    )


def _values(names: list[str]) -> Values:
    """The fields' values as one tuple, in one call (``attrgetter`` of one name would
    return the bare value: asked twice, it gives a tuple)."""
    if not names:
        return lambda _data: ()
    getter: Values = (
        operator.attrgetter(*names) if len(names) > 1 else operator.attrgetter(*names * 2)
    )
    return getter


@dataclass(frozen=True)
class _Rules:
    """The checks of one data type, each field's chosen once by its name and type.

    ``known`` says in a few calls that every tenant id, short text and count is valid (the
    texts found valid before, the counts in range). When it cannot, each of those fields
    is checked on its own (``checks``), which names the field; long texts, durations and
    times are always checked on their own.
    """

    known: Callable[[Any], bool]
    checks: tuple[tuple[str, str, Check], ...]  # (attribute, field as errors name it, check)
    always: tuple[tuple[str, str, Check], ...]
    times: tuple[tuple[str, str], ...]
    order: dict[str, int]


def _known(
    tenants: list[str],
    texts: list[str],
    optional_texts: list[str],
    ranges: dict[tuple[int, int], list[str]],
) -> Callable[[Any], bool]:
    tenant_values, text_values = _values(tenants), _values(texts)
    optional_values = _values(optional_texts)
    every_text = _values(tenants + texts + optional_texts)
    # The texts of one event together (account, team, user, model ...) repeat most of all.
    combinations = _Known()
    bounded = tuple((_values(names), low, high) for (low, high), names in ranges.items())

    def known(data: Any) -> bool:
        together = every_text(data)
        if together not in combinations.values:
            if not (
                _TENANTS.values.issuperset(tenant_values(data))
                and _TEXTS.values.issuperset(text_values(data))
                and _OPTIONAL_TEXTS.values.issuperset(optional_values(data))
            ):
                return False
            combinations.add(together)
        for values, low, high in bounded:
            found = values(data)
            if min(found) < low or max(found) > high:
                return False
        return True

    return known


def _rules(data_type: type[r.EventData]) -> _Rules:
    hints = get_type_hints(data_type)
    tenants: list[str] = []
    texts: list[str] = []
    optional_texts: list[str] = []
    ranges: dict[tuple[int, int], list[str]] = {}
    checks: list[tuple[str, str, Check]] = []
    always: list[tuple[str, str, Check]] = []
    times: list[tuple[str, str]] = []
    for name in data_type.__struct_fields__:
        hint, field = hints[name], f"data.{name}"
        bounds: tuple[int, int] | None = None
        if name in TENANT_FIELDS:
            tenants.append(name)
            checks.append((name, field, check_tenant_id))
        elif hint is str and name in LONG_TEXT:
            always.append((name, field, _check_long_text(LONG_TEXT[name], name in REQUIRED_TEXT)))
        elif hint is str and name in REQUIRED_TEXT:
            texts.append(name)
            checks.append((name, field, check_required_text))
        elif hint is str:
            optional_texts.append(name)
            checks.append((name, field, check_short_text))
        elif hint is int and name in TOKEN_FIELDS:
            bounds = (0, MAX_TOKENS)
        elif hint is int and name in MILLISECOND_FIELDS:
            bounds = (0, MAX_DURATION_MS)
        elif hint is int and name == "status_code":
            bounds = (100, 599)
        elif hint == Decimal | None:
            always.append((name, field, _check_seconds))
        elif hint == datetime | None:
            times.append((name, field))
        # Left: enums (msgspec checked their values) and flags.
        if bounds is not None:
            ranges.setdefault(bounds, []).append(name)
            checks.append((name, field, _check_range(*bounds)))
    return _Rules(
        known=_known(tenants, texts, optional_texts, ranges),
        checks=tuple(checks),
        always=tuple(always),
        times=tuple(times),
        order={f"data.{name}": n for n, name in enumerate(data_type.__struct_fields__)},
    )


RULES: Final = {data_type: _rules(data_type) for data_type in r.DATA_TYPES.values()}


def check_data(
    index: int, data: r.EventData, event_time: datetime, now: datetime, limits: Limits
) -> list[FieldError]:
    """Every range, size and consistency problem of one event's data (empty: valid), in
    the order of the struct's fields."""
    rules = RULES[type(data)]
    errors: list[FieldError] = []
    checks = rules.always if rules.known(data) else rules.checks + rules.always
    for name, field, check in checks:
        if (problem := check(index, field, getattr(data, name))) is not None:
            errors.append(problem)
    for name, field in rules.times:
        value = getattr(data, name)
        if value is None:
            continue
        found = check_time(index, field, value, now, limits)
        if found is None and value > event_time:
            found = FieldError(index, field, "is later than the event time", "out_of_range")
        if found is not None:
            errors.append(found)
    if errors:
        errors.sort(key=lambda error: rules.order[error.field])
    elif type(data) is r.ModelCallData:
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
