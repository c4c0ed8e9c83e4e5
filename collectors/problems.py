"""What a rejected request says: which event, which field, what is wrong.

Rejections are problem+json (RFC 9457) with an ``errors`` list, e.g.
``{"errors": [{"index": 3, "field": "data.input_tokens", "message": "..."}]}``. The
``reason`` of each error is one of a fixed set, so it can label a metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

Reason = Literal[
    "malformed",  # not JSON, or not an object where one is needed
    "invalid_field",  # wrong type, missing, unknown or empty field
    "unknown_type",  # an event type meterhouse does not know
    "out_of_range",  # negative, absurd or inconsistent quantity
    "time_out_of_range",  # too far in the future or too old
    "scope",  # the key may not send this source or account
    "unknown_account",  # no account with this id exists (yet)
]
REASONS: Final = (
    "malformed",
    "invalid_field",
    "unknown_type",
    "out_of_range",
    "time_out_of_range",
    "scope",
    "unknown_account",
)
MAX_REPORTED_ERRORS: Final = 100

_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


@dataclass(frozen=True)
class FieldError:
    index: int | None  # position in the batch; None for the request as a whole
    field: str  # dotted path, e.g. "data.input_tokens"; "" for the whole event
    message: str
    reason: Reason

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


def join_field(prefix: str, path: str) -> str:
    """``("data", ".input_tokens")`` -> ``data.input_tokens``; ``("", "[2].x")`` -> ``[2].x``."""
    if not path:
        return prefix
    if not prefix:
        return path.lstrip(".")
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path.lstrip('.')}"


def from_msgspec(index: int | None, prefix: str, exc: msgspec.MsgspecError) -> FieldError:
    """msgspec says "Expected `int`, got `str` - at `$.input_tokens`": split field and text."""
    text = str(exc)
    match = _AT_PATH.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") or "") if match else ""
    named = _NAMED_FIELD.match(message)
    field = join_field(prefix, path)
    if named:
        field = join_field(field, "." + named.group("name"))
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return FieldError(index, prefix, f"not valid JSON: {message}", "malformed")
    if message.startswith("Expected `object`"):
        return FieldError(index, field, message, "malformed" if not field else "invalid_field")
    return FieldError(index, field, message, "invalid_field")
