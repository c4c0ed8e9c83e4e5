"""Issue 13, item 14: an ingest key without an account may not create usage for accounts
that do not exist. Against the real `meterhouse run`: the batch is refused with a 400 that
names the event, the account and what to do; nothing is stored; the account created a
moment later is accepted at once (no cache hides it)."""

from __future__ import annotations

from pathlib import Path

from tests.durability.service import Service, model_call


def test_usage_of_an_unknown_account_is_refused_until_it_is_created(tmp_path: Path) -> None:
    service = Service(tmp_path)
    try:
        service.start()
        batch = [model_call("u1", account="acme"), model_call("u2", account="nobody-yet")]
        refused = service.post(batch)
        assert refused.status_code == 400, refused.text
        problem = refused.json()
        assert "account that does not exist" in problem["detail"]
        assert problem["errors"] == [
            {
                "index": 1,
                "field": "subject",
                "message": "no account 'nobody-yet': create it first "
                "(`meterhouse accounts create nobody-yet`) or fix the id",
            }
        ]
        assert service.metric_sum("meterhouse_ingest_events_rejected_total") == 2

        service.create_accounts("nobody-yet")
        accepted = service.post(batch)
        assert accepted.status_code == 204, accepted.text
        service.wait_drained()
        rows = service.sql(
            "SELECT account_id, count() FROM usage_events WHERE event_id IN ('u1', 'u2') "
            "GROUP BY account_id ORDER BY account_id"
        )
        assert rows == [["acme", 1], ["nobody-yet", 1]]
        # The refused batch stored nothing: each event is there once, from the second post.
        assert service.sql("SELECT count() FROM event_claims WHERE event_id = 'u2'") == [[1]]
    finally:
        service.stop()
