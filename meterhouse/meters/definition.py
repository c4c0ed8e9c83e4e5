"""A meter, as OpenMeter defines one: which events, which value, how aggregated, grouped.

A meter names a CloudEvents type, an aggregation (SUM, COUNT, UNIQUE_COUNT, AVG, MIN,
MAX, LATEST), a value property (a JSONPath into the event's ``data``) and named group-by
properties (JSONPaths too). :func:`parse` checks a definition as the API, the CLI and the
meters file give it (OpenMeter's ``MeterCreate`` JSON) and raises :class:`MeterError`
naming the field. JSONPaths are the subset a column expression can follow: ``$`` then
``.name``, ``['name']`` or ``[index]`` steps (no wildcards, filters or recursion: a meter
value is one value per event).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from meterhouse.errors import MeterhouseError

AGGREGATIONS: Final = ("SUM", "COUNT", "UNIQUE_COUNT", "AVG", "MIN", "MAX", "LATEST")
NUMERIC: Final = frozenset({"SUM", "AVG", "MIN", "MAX", "LATEST"})
SLUG: Final = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
GROUP_KEY: Final = re.compile(r"^[A-Za-z0-9_]{1,64}$")
RESERVED_GROUPS: Final = frozenset({"subject"})
MAX_PATH_STEPS: Final = 16
MAX_GROUPS: Final = 16
_NAME_STEP: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_QUOTED_STEP: Final = re.compile(r"\[\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\")\s*\]")
_INDEX_STEP: Final = re.compile(r"\[\s*(-?\d{1,6})\s*\]")
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FIELDS: Final = frozenset(
    {
        "slug",
        "name",
        "description",
        "aggregation",
        "eventType",
        "eventFrom",
        "valueProperty",
        "groupBy",
        "metadata",
        "unit",
    }
)

Origin = Literal["file", "api"]
Step = str | int  # a key, or an array index (0-based, negative from the end)


class MeterError(MeterhouseError):
    """A meter definition that cannot be used; ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Meter:
    slug: str
    event_type: str
    aggregation: str
    value_property: JsonPath | None
    group_by: dict[str, JsonPath] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    unit: str = ""
    event_from: datetime | None = None
    meter_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    origin: Origin = "api"

    def as_openmeter(self) -> dict[str, Any]:
        """OpenMeter's ``Meter`` JSON (meterhouse's ``unit`` and ``origin`` in
        ``annotations``, the place OpenMeter keeps what the system says of a meter)."""
        body: dict[str, Any] = {
            "id": self.meter_id,
            "slug": self.slug,
            "name": self.name or self.slug,
            "description": self.description,
            "aggregation": self.aggregation,
            "eventType": self.event_type,
            "groupBy": {key: path.text for key, path in self.group_by.items()},
            "annotations": {"meterhouse.unit": self.unit, "meterhouse.origin": self.origin},
            "createdAt": _rfc3339(self.created_at),
            "updatedAt": _rfc3339(self.updated_at or self.created_at),
        }
        if self.value_property is not None:
            body["valueProperty"] = self.value_property.text
        if self.event_from is not None:
            body["eventFrom"] = _rfc3339(self.event_from)
        return body


def _rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return "1970-01-01T00:00:00Z"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_path(field_name: str, text: object) -> JsonPath:
    """A JSONPath of the supported subset, or MeterError naming ``field_name``."""
    if not isinstance(text, str) or not text.strip():
        raise MeterError(field_name, "must be a JSONPath such as $.tokens")
    source = text.strip()
    if not source.startswith("$"):
        raise MeterError(field_name, f"{source[:80]!r} must start with $ (e.g. $.tokens)")
    steps: list[Step] = []
    at = 1
    while at < len(source):
        for pattern in (_NAME_STEP, _QUOTED_STEP, _INDEX_STEP):
            found = pattern.match(source, at)
            if found is None:
                continue
            if pattern is _INDEX_STEP:
                steps.append(int(found.group(1)))
            elif pattern is _QUOTED_STEP:
                quoted = found.group(1) if found.group(1) is not None else found.group(2)
                steps.append(re.sub(r"\\(.)", r"\1", quoted))
            else:
                steps.append(found.group(1))
            at = found.end()
            break
        else:
            raise MeterError(
                field_name,
                f"{source[:80]!r}: cannot read from {source[at : at + 20]!r}; use $.name, "
                "$['name'] or $.list[0] steps (no wildcards, filters or ..)",
            )
    if not steps:
        raise MeterError(field_name, "$ alone is the whole object: name a property, e.g. $.tokens")
    if len(steps) > MAX_PATH_STEPS:
        raise MeterError(field_name, f"at most {MAX_PATH_STEPS} steps")
    return JsonPath(source, tuple(steps))


def _text(payload: dict[str, Any], name: str, *, limit: int, required: bool = False) -> str:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise MeterError(name, "is required")
        return ""
    if not isinstance(value, str):
        raise MeterError(name, "must be a string")
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise MeterError(name, f"must be at most {limit} characters, without control characters")
    return value


def _time(name: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MeterError(name, f"{value[:40]!r} is not an RFC 3339 time") from exc
    else:
        raise MeterError(name, "must be an RFC 3339 time")
    if moment.tzinfo is None:
        raise MeterError(name, "needs a time zone offset (e.g. 2026-01-01T00:00:00Z)")
    return moment


def parse(payload: object, *, origin: Origin = "api") -> Meter:
    """A meter from OpenMeter's MeterCreate JSON (plus meterhouse's ``unit``)."""
    if not isinstance(payload, dict):
        raise MeterError("", "a meter is a JSON object (OpenMeter's MeterCreate)")
    unknown = sorted(str(key) for key in payload if key not in _FIELDS)
    if unknown:
        raise MeterError(unknown[0], f"unknown field; known: {', '.join(sorted(_FIELDS))}")
    slug = _text(payload, "slug", limit=64, required=True)
    if not SLUG.match(slug):
        raise MeterError("slug", f"{slug!r}: lower-case letters and digits joined by single _")
    aggregation = _text(payload, "aggregation", limit=16, required=True).upper()
    if aggregation not in AGGREGATIONS:
        raise MeterError("aggregation", f"must be one of {', '.join(AGGREGATIONS)}")
    event_type = _text(payload, "eventType", limit=256, required=True)
    raw_value = payload.get("valueProperty")
    value: JsonPath | None = None
    if aggregation == "COUNT":
        if raw_value not in (None, ""):
            raise MeterError(
                "valueProperty", "COUNT counts events: leave valueProperty out (or use SUM)"
            )
    else:
        if raw_value in (None, ""):
            kind = "a number" if aggregation in NUMERIC else "a string"
            raise MeterError("valueProperty", f"{aggregation} needs the JSONPath of {kind} in data")
        value = parse_path("valueProperty", raw_value)
    groups = payload.get("groupBy") or {}
    if not isinstance(groups, dict):
        raise MeterError("groupBy", "must be an object: group name -> JSONPath")
    if len(groups) > MAX_GROUPS:
        raise MeterError("groupBy", f"at most {MAX_GROUPS} groups")
    group_by: dict[str, JsonPath] = {}
    for key, path in groups.items():
        if not isinstance(key, str) or not GROUP_KEY.match(key):
            raise MeterError(f"groupBy.{str(key)[:64]}", "keys are letters, digits and _")
        if key in RESERVED_GROUPS:
            raise MeterError(f"groupBy.{key}", "subject is reserved: every meter groups by it")
        group_by[key] = parse_path(f"groupBy.{key}", path)
    return Meter(
        slug=slug,
        event_type=event_type,
        aggregation=aggregation,
        value_property=value,
        group_by=group_by,
        name=_text(payload, "name", limit=256),
        description=_text(payload, "description", limit=1024),
        unit=_text(payload, "unit", limit=64),
        event_from=_time("eventFrom", payload.get("eventFrom")),
        origin=origin,
    )


def new_ulid(now: float | None = None) -> str:
    """A ULID (48-bit milliseconds, 80 random bits), as OpenMeter's ids."""
    millis = int((time.time() if now is None else now) * 1000)
    return _ulid(millis, int.from_bytes(os.urandom(10), "big"))


def stable_ulid(name: str) -> str:
    """A ULID-shaped id that is the same for the same name (meters of the file, subjects):
    ids that do not change from one start to the next."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big")
    return _ulid(digest >> 80, digest & ((1 << 80) - 1))


def _ulid(millis: int, random: int) -> str:
    value = (millis & ((1 << 48) - 1)) << 80 | random
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))
