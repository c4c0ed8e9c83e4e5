"""Ingest keys: hashed, scoped, revocable at once, expiring; failed guesses are braked."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import pytest

from meterhouse.access import keys
from meterhouse.store.base import Store
from tests.ingest.conftest import ADMIN_TOKEN, SOURCE, Service, ServiceFactory, event
from tests.support.asgi import call


def test_only_the_hash_of_the_secret_is_stored(clean_store: Store) -> None:
    key, token = keys.create_key(
        clean_store, purpose="ingest", source="s", actor="cli:test", description="d"
    )
    prefix, key_id, secret = token.split("_", 2)
    assert (prefix, key_id) == ("mh", key.key_id)
    assert len(secret) >= 40
    stored = clean_store.query("SELECT key_hash FROM api_keys").scalar()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    everything = json.dumps(clean_store.query("SELECT * FROM api_keys").rows, default=str)
    assert secret not in everything


def test_create_and_revoke_are_audited(clean_store: Store) -> None:
    key, _ = keys.create_key(
        clean_store, purpose="ingest", source="s", account_id="acme", actor="cli:ann"
    )
    keys.revoke_key(clean_store, key.key_id, actor="cli:bob")
    audit = clean_store.query(
        "SELECT actor, action, target_id, account_id, after FROM audit_log ORDER BY at"
    ).rows
    assert [(a, b, c, d) for a, b, c, d, _ in audit] == [
        ("cli:ann", "api_key.create", key.key_id, "acme"),
        ("cli:bob", "api_key.revoke", key.key_id, "acme"),
    ]
    assert json.loads(audit[1][4])["state"] == "revoked"
    assert "key_hash" not in audit[0][4]


def test_listing_hides_inactive_keys_unless_asked(clean_store: Store) -> None:
    kept, _ = keys.create_key(clean_store, purpose="ingest", source="s", actor="t")
    gone, _ = keys.create_key(clean_store, purpose="ingest", source="s", actor="t")
    keys.revoke_key(clean_store, gone.key_id, actor="t")
    assert [k.key_id for k in keys.list_keys(clean_store)] == [kept.key_id]
    every = {
        k.key_id: k.state(keys.now_utc())
        for k in keys.list_keys(clean_store, include_inactive=True)
    }
    assert every == {kept.key_id: "active", gone.key_id: "revoked"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"purpose": "ingest", "source": ""}, "needs --source"),
        ({"purpose": "owner", "source": "s"}, "unknown purpose"),
        ({"purpose": "ingest", "source": "has space"}, "printable"),
        ({"purpose": "ingest", "source": "s", "account_id": "bad id!"}, "not allowed"),
    ],
)
def test_bad_key_fields_are_refused(
    clean_store: Store, fields: dict[str, str], message: str
) -> None:
    with pytest.raises(keys.MeterhouseError, match=message):
        keys.create_key(clean_store, actor="t", **fields)  # type: ignore[arg-type]


def test_durations() -> None:
    assert keys.parse_duration("90d") == timedelta(days=90)
    assert keys.parse_duration("12h") == timedelta(hours=12)
    for bad in ("", "0d", "10", "5y", "-1d"):
        with pytest.raises(keys.ApiKeyError):
            keys.parse_duration(bad)


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "send Authorization: Bearer"),
        ("Basic dXNlcjpwYXNz", "send Authorization: Bearer"),
        ("Bearer not-a-key", "not a meterhouse key"),
        ("Bearer mh_0123456789abcdef_" + "x" * 43, "unknown API key"),
    ],
)
def test_missing_malformed_and_unknown_keys_are_401(
    service: Service, authorization: str | None, detail: str
) -> None:
    headers = {"content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    answer = call(service.app, "POST", "/api/v1/events", headers=headers, body=b"[]")
    assert answer.status == 401
    assert detail in answer.json()["detail"]
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_secret_for_a_real_key_id_is_401(service: Service) -> None:
    prefix, key_id, secret = service.token.split("_", 2)
    forged = f"{prefix}_{key_id}_{secret[:-2]}zz"
    answer = service.post([event("w1")], token=forged)
    assert (answer.status, answer.json()["detail"]) == (401, "unknown API key")
    assert service.metric("meterhouse_ingest_auth_failures_total", {"reason": "bad_secret"}) == 1


def test_revocation_through_the_admin_api_is_effective_at_once(service: Service) -> None:
    token = service.key()
    key_id = token.split("_")[1]
    assert service.post([event("v1")], token=token).status == 204
    answer = call(
        service.app,
        "POST",
        f"/api/v1/keys/{key_id}/revoke",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        body=b'{"actor": "cli:test"}',
    )
    assert answer.status == 200
    assert answer.json()["key"]["state"] == "revoked"
    refused = service.post([event("v2")], token=token)
    assert (refused.status, refused.json()["detail"]) == (401, "this API key was revoked")


def test_revocation_by_another_process_is_seen_within_the_cache_time(
    service_with: ServiceFactory,
) -> None:
    service = service_with(ingest_key_cache_seconds=0.5)
    token = service.key()
    assert service.post([event("c1")], token=token).status == 204
    keys.revoke_key(service.store, token.split("_")[1], actor="other-process")
    deadline = time.monotonic() + 5
    while service.post([event("c2")], token=token).status == 204:
        assert time.monotonic() < deadline, "revocation not seen after 5 s"
        time.sleep(0.1)
    assert service.post([event("c3")], token=token).status == 401


def test_an_expired_key_is_401(service: Service) -> None:
    _, token = keys.create_key(
        service.store, purpose="ingest", source=SOURCE, expires_in=timedelta(seconds=1), actor="t"
    )
    assert service.post([event("x1")], token=token).status == 204
    time.sleep(1.1)
    answer = service.post([event("x2")], token=token)
    assert (answer.status, answer.json()["detail"]) == (401, "this API key has expired")


def test_a_read_key_cannot_ingest(service: Service) -> None:
    answer = service.post([event("r1")], token=service.key(purpose="read"))
    assert answer.status == 403
    assert "ingest key" in answer.json()["detail"]


def test_a_key_scoped_to_another_source_is_403_naming_the_event(service: Service) -> None:
    token = service.key(source="platform.other")
    answer = service.post([event("s1", source="platform.other"), event("s2")], token=token)
    assert answer.status == 403
    assert answer.json()["errors"] == [
        {
            "index": 1,
            "field": "source",
            "message": "this key may only send events with source 'platform.other', "
            f"not '{SOURCE}'",
        }
    ]
    assert service.scalar("SELECT count() FROM usage_events") == 0


def test_a_key_scoped_to_another_account_is_403(service: Service) -> None:
    token = service.key(account="acme")
    answer = service.post([event("a1"), event("a2", subject="globex")], token=token)
    assert answer.status == 403
    [error] = answer.json()["errors"]
    assert (error["index"], error["field"]) == (1, "subject")
    data_answer = service.post([event("a3", account_id="globex")], token=token)
    assert data_answer.json()["errors"][0]["field"] == "data.account_id"


def test_failed_authentications_are_limited_per_client(service_with: ServiceFactory) -> None:
    service = service_with(ingest_auth_failure_burst=3, ingest_auth_failure_per_second=0.2)
    bad = "mh_0123456789abcdef_" + "y" * 43
    statuses = [service.post([], token=bad, client="10.0.0.1").status for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    limited = service.post([event("l1")], client="10.0.0.1")
    assert limited.status == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert service.post([event("l2")], client="10.0.0.2").status == 204
    rejected = "meterhouse_ingest_requests_rejected_total"
    assert service.metric(rejected, {"endpoint": "cloudevents", "reason": "rate_limited"}) == 3


def test_admin_key_api_needs_the_admin_token(service: Service) -> None:
    for method, path in (
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("POST", "/api/v1/keys/0123456789abcdef/revoke"),
    ):
        answer = call(
            service.app, method, path, headers={"authorization": f"Bearer {service.token}"}
        )
        assert answer.status == 401


def test_admin_key_api_creates_and_lists(service: Service) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    created = call(
        service.app,
        "POST",
        "/api/v1/keys",
        headers=admin,
        body=b'{"source": "s9", "account_id": "acme", "expires_in": "90d"}',
    )
    assert created.status == 201
    token = created.json()["token"]
    assert keys.parse_token(token) is not None
    listed = call(service.app, "GET", "/api/v1/keys", headers=admin).json()["keys"]
    assert {k["source"] for k in listed} == {SOURCE, "s9"}
    bad = call(service.app, "POST", "/api/v1/keys", headers=admin, body=b'{"source": ""}')
    assert bad.status == 400
    missing = call(service.app, "POST", "/api/v1/keys/ffffffffffffffff/revoke", headers=admin)
    assert missing.status == 404
