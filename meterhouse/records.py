"""Record types shared by collectors, rating and exporters.

Incoming events are CloudEvents (docs/events.md). Their ``data`` is decoded into one of the
``*Data`` structs below, by event type; ``msgspec`` validates types while decoding, which
is both the fastest and the strictest path. Quantities are Decimal from the wire on.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Final, Literal

import msgspec

JOB_KINDS: Final = ("scheduler", "asset", "webhook", "notification")
RUN_STATUSES: Final = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
FINAL_RUN_STATUSES: Final = ("succeeded", "failed", "cancelled", "timed_out")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")

JobKind = Literal["scheduler", "asset", "webhook", "notification"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
LogLevel = Literal["debug", "info", "warning", "error"]

MODEL_CALL: Final = "com.meterhouse.model.call"
JOB_DEFINITION: Final = "com.meterhouse.job.definition"
JOB_RUN: Final = "com.meterhouse.job.run"
JOB_LOG: Final = "com.meterhouse.job.log"
API_CALL: Final = "com.meterhouse.api.call"
EVENT_TYPES: Final = (MODEL_CALL, JOB_DEFINITION, JOB_RUN, JOB_LOG, API_CALL)
# Types in this namespace are meterhouse's own: an unknown one is a typo, refused. Any
# other type is a free-form event (OpenMeter's model), stored raw for meters.
RESERVED_TYPE_PREFIX: Final = "com.meterhouse."
FREE_FORM: Final = "free-form"  # the metrics label of every free-form type

# Usage types, their units, and the order they appear in on a statement.
USAGE_UNITS: Final = {
    "input": "token",
    "cache_read": "token",
    "cache_write": "token",
    "output": "token",
    "reasoning": "token",
    "compute_seconds": "second",
    "call": "call",
}


def charge_id(event: Event) -> str:
    """The ``event_id`` of the usage row that charges ``event``.

    A finished job run is charged by its run, not by the state event that reported it:
    ``run:<run_id>``, so a final state sent again under another id (a platform retrying
    with fresh ids, a ``failed`` corrected to ``timed_out``) makes a second row with the
    same (account, source, event_id), which the writer drops as a duplicate: the first
    final state received is the one charged. The run is keyed by its run id within the
    account, as ``job_runs_current`` keys it; the source stays the sender's (provenance),
    so one run reported by two sources is charged once per source (docs/events.md). Every
    other usage row keeps the CloudEvent's id.
    """
    if event.type == JOB_RUN:
        data = event.data
        if isinstance(data, JobRunData):
            return f"run:{data.run_id}"
    return event.id


def run_status_rank(status: str) -> int:
    """Order of run states: a later rank wins whatever order the events arrive in."""
    if status == "queued":
        return 1
    if status == "running":
        return 2
    return 3


class Owner(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Who an event belongs to; account_id comes from the CloudEvent subject when absent.

    Data structs refuse unknown fields (inherited): a misspelt ``input_token`` must be an
    error naming the field, not a silent zero.
    """

    account_id: str = ""
    team_id: str = ""
    project_id: str = ""
    user_id: str = ""


class ModelCallData(Owner, kw_only=True, frozen=True):
    model: str
    provider: str = ""
    operation: str = "chat"
    # Per OpenTelemetry GenAI conventions input_tokens INCLUDES cache_read and cache_write.
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class JobDefinitionData(Owner, kw_only=True, frozen=True):
    job_id: str
    kind: JobKind
    name: str
    schedule: str = ""
    status: Literal["active", "paused"] = "active"
    typical_duration_ms: int = 0
    deleted: bool = False


class JobRunData(Owner, kw_only=True, frozen=True):
    job_id: str
    run_id: str
    kind: JobKind
    status: RunStatus
    # Final states carry the compute time so the run can be priced from this event alone.
    started_at: datetime | None = None
    duration_seconds: Decimal | None = None
    error_type: str = ""
    error_message: str = ""


class JobLogData(Owner, kw_only=True, frozen=True):
    job_id: str
    run_id: str
    kind: JobKind
    level: LogLevel
    message: str
    error_type: str = ""
    error_message: str = ""
    stack_trace: str = ""


class ApiCallData(Owner, kw_only=True, frozen=True):
    route: str
    method: str = "GET"
    status_code: int = 200
    duration_ms: int = 0


class FreeFormData(Owner, kw_only=True, frozen=True):
    """A free-form event (a type meterhouse does not define): its ``data`` kept as the
    JSON text it was sent as, and who it is for. ``subject`` is OpenMeter's subject (the
    customer, user or resource the usage is attributed to, within the account)."""

    subject: str
    raw: str  # the CloudEvent's data as sent (a JSON object), or "" when it had none


EventData = ModelCallData | JobDefinitionData | JobRunData | JobLogData | ApiCallData | FreeFormData

DATA_TYPES: Final[dict[str, type[EventData]]] = {
    MODEL_CALL: ModelCallData,
    JOB_DEFINITION: JobDefinitionData,
    JOB_RUN: JobRunData,
    JOB_LOG: JobLogData,
    API_CALL: ApiCallData,
}


class Event(msgspec.Struct, kw_only=True, frozen=True):
    """A validated CloudEvent with typed data and the owner resolved."""

    id: str
    source: str
    type: str
    time: datetime
    data: EventData
    account_id: str


class PricedLine(msgspec.Struct, kw_only=True, frozen=True):
    usage_type: str
    quantity: Decimal
    unit: str
    unit_price_credits: Decimal
    unit_price_usd: Decimal
    credits: Decimal
    usd: Decimal


class Rating(msgspec.Struct, kw_only=True, frozen=True):
    """What rating says about one usage event."""

    kind: Literal["model", "job", "api", "meter"]
    item: str
    provider: str
    lines: tuple[PricedLine, ...]
    credits: Decimal
    usd: Decimal
    priced: bool
    unpriced_reason: str
    price_version: str


class Account(msgspec.Struct, kw_only=True, frozen=True):
    account_id: str
    name: str
    organisation: str = ""
    time_zone: str = "UTC"
    plan: str = "free"
    stripe_customer_id: str = ""
    custom_instructions: str = ""
    status: str = "active"


def month_start(day: date) -> date:
    return day.replace(day=1)
