"""Builders shared by the rating tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from meterhouse.records import (
    API_CALL,
    JOB_RUN,
    MODEL_CALL,
    ApiCallData,
    Event,
    JobRunData,
    ModelCallData,
)

# A weekday noon (UTC): outside DeepSeek's peak window, after every dated price change
# the tests rely on.
NOON = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)

TEST_BOOK = """
version = "test-1"

[plans.free]
credits_per_usd = "125"
[plans.starter]
credits_per_usd = "120"
[plans.pro]
credits_per_usd = "110"
[plans.enterprise]
credits_per_usd = "100"

[jobs.credits_per_second]
scheduler = "0.02"
asset = "0.05"
webhook = "0.01"
notification = "0.005"

[api]
credits_per_call = "0.001"

[accounts.acme]
discount_percent = "20"
note = "2026 contract"

[[accounts.acme.overrides]]
kind = "model"
item = "gpt-4o"
usage_type = "input"
credits_per_unit = "0.0002"

[[accounts.acme.overrides]]
kind = "job"
item = "asset"
usage_type = "compute_seconds"
credits_per_unit = "0.03"

[[accounts.acme.overrides]]
kind = "api"
item = "/v1/export"
usage_type = "*"
credits_per_unit = "0.5"

[accounts.wild]

[[accounts.wild.overrides]]
kind = "model"
item = "*"
usage_type = "*"
credits_per_unit = "0.000001"
"""


def model_event(
    model: str,
    provider: str = "",
    *,
    at: datetime = NOON,
    account_id: str = "acct_1",
    **tokens: int,
) -> Event:
    data = ModelCallData(account_id=account_id, model=model, provider=provider, **tokens)
    return Event(id="e1", source="test", type=MODEL_CALL, time=at, data=data, account_id=account_id)


def job_event(
    kind: str,
    status: str = "succeeded",
    seconds: Decimal | None = Decimal("12.5"),
    *,
    account_id: str = "acct_1",
) -> Event:
    data = msgspec.convert(
        {
            "job_id": "j1",
            "run_id": "r1",
            "kind": kind,
            "status": status,
            "duration_seconds": seconds,
        },
        JobRunData,
    )
    return Event(id="e2", source="test", type=JOB_RUN, time=NOON, data=data, account_id=account_id)


def api_event(route: str = "/v1/things", *, account_id: str = "acct_1") -> Event:
    data = ApiCallData(route=route)
    return Event(id="e3", source="test", type=API_CALL, time=NOON, data=data, account_id=account_id)


def walk(value: Any) -> list[Any]:
    """Every leaf value of a record, however nested."""
    if isinstance(value, msgspec.Struct):
        return [leaf for field in value.__struct_fields__ for leaf in walk(getattr(value, field))]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in walk(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in walk(item)]
    return [value]
