"""Free-form CloudEvents (any type outside com.meterhouse.*): the same door as every event,
stored raw in meter_events, once per (account, source, id)."""

from __future__ import annotations

import json
from typing import Any

from tests.ingest.conftest import Service, event


def _gpu(event_id: str, subject: str = "acme", **data: Any) -> dict[str, Any]:
    return event(event_id, "gpu.minutes", subject=subject, minutes=3, gpu="a100", **data)


def _rows(service: Service) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in service.store.query(
            "SELECT account_id, team_id, subject, event_type, source, event_id, data "
            "FROM meter_events ORDER BY account_id, event_id"
        ).rows
    ]


def test_free_form_events_are_stored_raw_once(service: Service) -> None:
    mixed = [
        _gpu("g1"),
        _gpu("g2", subject="globex", team_id="ml"),
        event("m1"),  # a typed event in the same batch goes where it always went
        {**_gpu("g3"), "data": None},
    ]
    answer = service.post(mixed)
    assert answer.status == 204, answer.body
    again = service.post(mixed)  # a re-delivery of everything: nothing more is stored
    assert again.status == 204, again.body
    rows = _rows(service)
    assert [row[:6] for row in rows] == [
        ("acme", "", "acme", "gpu.minutes", "platform.test", "g1"),
        ("acme", "", "acme", "gpu.minutes", "platform.test", "g3"),
        ("globex", "ml", "globex", "gpu.minutes", "platform.test", "g2"),
    ]
    assert json.loads(rows[0][6]) == {"minutes": 3, "gpu": "a100"}
    assert rows[1][6] == ""
    assert service.scalar("SELECT count() FROM usage_events") == 1
    assert service.metric("meterhouse_ingest_events_accepted_total", {"type": "free-form"}) == 6


def test_an_account_scoped_key_keeps_subjects_inside_its_account(service: Service) -> None:
    token = service.key(account="acme")
    answer = service.post([_gpu("c1", subject="customer-7")], token=token)
    assert answer.status == 204, answer.body
    assert [row[:3] for row in _rows(service)] == [("acme", "", "customer-7")]
    other = service.post([_gpu("c2", subject="x", account_id="globex")], token=token)
    assert other.status == 403, other.body
    assert other.json()["errors"][0]["field"] == "data.account_id"


def test_bad_free_form_events_name_their_field(service: Service) -> None:
    bad = [
        {**_gpu("b1"), "data": [1, 2]},
        _gpu("b2", subject=None),
        _gpu("b3", team_id=7),
        event("b4", "com.meterhouse.model.cal"),  # a typo in meterhouse's namespace
    ]
    answer = service.post(bad)
    assert answer.status == 400, answer.body
    fields = [(e["index"], e["field"]) for e in answer.json()["errors"]]
    assert fields == [(0, "data"), (1, "subject"), (2, "data.team_id"), (3, "type")]
    assert service.scalar("SELECT count() FROM meter_events") == 0
