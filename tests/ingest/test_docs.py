"""docs/events.md and docs/openapi.yaml say what the code does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml

from meterhouse import records as r
from tests.ingest.conftest import SOURCE, Service

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_OF = {
    r.MODEL_CALL: "ModelCallData",
    r.JOB_DEFINITION: "JobDefinitionData",
    r.JOB_RUN: "JobRunData",
    r.JOB_LOG: "JobLogData",
    r.API_CALL: "ApiCallData",
}


def _openapi() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCS / "openapi.yaml").read_text())
    return loaded


def _examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", (DOCS / "events.md").read_text(), re.S)
    return [json.loads(block) for block in blocks if '"specversion"' in block]


@pytest.mark.parametrize("event_type", r.EVENT_TYPES)
def test_openapi_data_schemas_match_the_record_types(event_type: str) -> None:
    schema = _openapi()["components"]["schemas"][SCHEMA_OF[event_type]]
    info = msgspec.inspect.type_info(r.DATA_TYPES[event_type])
    assert isinstance(info, msgspec.inspect.StructType)
    assert set(schema["properties"]) == {f.name for f in info.fields}
    assert set(schema["required"]) == {f.name for f in info.fields if f.required}


def test_events_md_documents_every_type_and_field() -> None:
    text = (DOCS / "events.md").read_text()
    for event_type, data_type in r.DATA_TYPES.items():
        section = text.split(f"#### `{event_type}`", 1)
        assert len(section) == 2, f"no section for {event_type}"
        body = section[1].split("####", 1)[0]
        for name in data_type.__struct_fields__:
            if name not in ("account_id", "team_id", "project_id", "user_id"):
                assert f"`{name}`" in body, f"{event_type}: {name} is not documented"


def test_every_example_is_valid_openapi_and_is_accepted(service: Service) -> None:
    examples = _examples()
    types = {e["type"] for e in examples}
    assert {t for t in types if t.startswith(r.RESERVED_TYPE_PREFIX)} == set(r.EVENT_TYPES)
    assert types - set(r.EVENT_TYPES), "no free-form example (docs/events.md, Meters)"
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/CloudEvent", "components": _openapi()["components"]}
    )
    now = datetime.now(UTC)
    for example in examples:
        validator.validate(example)
        # The examples carry fixed dates; shift them to now to stay inside the time window.
        example["time"] = (now - timedelta(minutes=5)).isoformat()
        if "started_at" in example["data"]:
            example["data"]["started_at"] = (now - timedelta(minutes=20)).isoformat()
        example["source"] = SOURCE
    answer = service.post(examples)
    assert answer.status == 204, answer.body


def test_openapi_rejects_what_the_service_rejects() -> None:
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/CloudEvent", "components": _openapi()["components"]}
    )
    good = _examples()[0]
    for bad in (
        {**good, "type": "com.meterhouse.other"},  # free-form types are outside it
        {**good, "type": "com.example.other", "subject": None},  # free-form needs one
        {**good, "data": {**good["data"], "input_tokens": -1}},
        {**good, "data": {**good["data"], "input_token": 1}},
        {k: v for k, v in good.items() if k != "id"},
    ):
        assert not validator.is_valid(bad)
