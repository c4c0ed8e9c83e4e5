"""Free-form CloudEvents: any type outside meterhouse's namespace, kept raw for meters.

OpenMeter's model: an event's ``data`` is whatever the platform measures (rows scanned,
GB stored, GPU minutes), and meters (meterhouse/meters/) say later how to aggregate it.
So the data is not decoded into a struct: it must be a JSON object (or absent, for
meters that count events) and is stored as the very JSON text it was sent as.

Who the event is for follows the typed events' rule, with OpenMeter's ``subject`` kept
as its own column (a customer, user or resource inside the account):

* ``data.account_id``, when the object has one, names the account;
* else the key's account (a key scoped to one account);
* else the subject is the account (the typed events' convention).

``data.team_id`` and ``data.project_id``, when present, are kept too, so team- and
project-scoped readers see their rows only, as they do for model calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

import msgspec

from collectors import validate as v
from collectors.problems import FieldError
from meterhouse import records as r
from meterhouse.access.keys import ApiKey

if TYPE_CHECKING:
    from collectors.cloudevents import Envelope

_ABSENT: Final = (b"", b"null")


class _Owner(msgspec.Struct, frozen=True):
    """The top-level fields of a free-form object that say whose usage it is; every other
    field is the platform's own and left alone."""

    account_id: object = ""
    team_id: object = ""
    project_id: object = ""
    user_id: object = ""


_OWNER: Final = msgspec.json.Decoder(_Owner)


def claims(event_type: str) -> bool:
    """Whether a type that no meterhouse struct decodes is a free-form event."""
    return not event_type.startswith(r.RESERVED_TYPE_PREFIX) and bool(event_type)


def _text(index: int, field: str, value: object, errors: list[FieldError]) -> str:
    if isinstance(value, str):
        return value
    errors.append(FieldError(index, field, "must be a string", "invalid_field"))
    return ""


def event(
    index: int, envelope: Envelope, errors: list[FieldError], key: ApiKey, now: datetime
) -> tuple[r.Event | None, list[FieldError]]:
    """The free-form event of one element, or all its errors (``errors`` holds the
    context's already)."""
    raw = bytes(envelope.data).strip()
    owner = _Owner()
    if raw in _ABSENT:
        raw = b""
    elif not raw.startswith(b"{"):
        errors.append(
            FieldError(index, "data", "must be a JSON object (or absent)", "invalid_field")
        )
    else:
        try:
            owner = _OWNER.decode(raw)
        except (msgspec.MsgspecError, RecursionError):
            errors.append(FieldError(index, "data", "is not valid JSON", "malformed"))
    subject = envelope.subject or ""
    problem = (
        v.check_envelope_text(index, "subject", subject)
        if subject
        else FieldError(
            index,
            "subject",
            "a free-form event needs a subject: the customer, user or resource its usage is for",
            "invalid_field",
        )
    )
    if problem is not None:
        errors.append(problem)
    account = _text(index, "data.account_id", owner.account_id, errors)
    team = _text(index, "data.team_id", owner.team_id, errors)
    project = _text(index, "data.project_id", owner.project_id, errors)
    user = _text(index, "data.user_id", owner.user_id, errors)
    field = "data.account_id"
    if not account:
        account, field = (key.account_id, "") if key.account_id else (subject, "subject")
    for name, value in (("data.team_id", team), ("data.project_id", project)):
        found = v.check_tenant_id(index, name, value)
        if found is not None:
            errors.append(found)
    found = v.check_short_text(index, "data.user_id", user)
    if found is not None:
        errors.append(found)
    if field and account:
        found = v.check_tenant_id(index, field, account)
        if found is not None:
            errors.append(found)
        elif key.account_id and account != key.account_id:
            errors.append(
                FieldError(
                    index,
                    field,
                    f"this key may only send events of account {key.account_id!r}, "
                    f"not {account[:80]!r}",
                    "scope",
                )
            )
    if errors:
        return None, errors
    data = r.FreeFormData(
        account_id=account,
        team_id=team,
        project_id=project,
        user_id=user,
        subject=subject,
        raw=raw.decode(),
    )
    time = envelope.time or now
    free = r.Event(
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        time=time,
        data=data,
        account_id=account,
    )
    return free, errors
