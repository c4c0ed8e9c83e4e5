"""Read keys take effect and stop at once; failures are rate limited; secrets stay secret."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from meterhouse.access import keys, tenants
from meterhouse.access import users as u
from meterhouse.store.base import Store
from tests.access.conftest import ADMIN_TOKEN, ServiceFactory

BALANCE = "/api/v1/accounts/acme/balance"
JOBS = "/api/v1/accounts/acme/jobs"


@pytest.fixture
def acme(clean_store: Store) -> Store:
    tenants.create_account(clean_store, "acme", actor="t")
    u.add_user(clean_store, "acme", "bob", email="bob@acme.example", actor="t")
    u.add_user(clean_store, "acme", "olga", email="olga@acme.example", actor="t")
    u.grant(clean_store, u.make_binding(clean_store, "acme", "olga", "owner"), actor="t")
    u.grant(clean_store, u.make_binding(clean_store, "acme", "bob", "viewer"), actor="t")
    return clean_store


def read_key(store: Store, user: str = "bob", **extra: timedelta) -> tuple[str, str]:
    key, token = keys.create_key(
        store, purpose="read", source="", account_id="acme", user_id=user, actor="t", **extra
    )
    return key.key_id, token


def test_revocations_and_role_changes_count_from_the_next_request(
    acme: Store, service_with: ServiceFactory
) -> None:
    service = service_with()
    key_id, token = read_key(acme)
    assert service.get(BALANCE, token).status == 200
    u.revoke(acme, u.make_binding(acme, "acme", "bob", "viewer"), actor="t")
    assert service.get(BALANCE, token).status == 403
    u.grant(acme, u.make_binding(acme, "acme", "bob", "billing"), actor="t")
    assert service.get(BALANCE, token).status == 200
    assert service.get(JOBS, token).status == 403  # billing reads no jobs
    keys.revoke_key(acme, key_id, actor="t")
    answer = service.get(BALANCE, token)
    assert (answer.status, answer.json()["detail"]) == (401, "this API key was revoked")


def test_an_expired_key_is_401(acme: Store, service_with: ServiceFactory) -> None:
    service = service_with()
    _, token = read_key(acme, expires_in=timedelta(seconds=1))
    assert service.get(BALANCE, token).status == 200
    time.sleep(1.1)
    answer = service.get(BALANCE, token)
    assert (answer.status, answer.json()["detail"]) == (401, "this API key has expired")


def test_a_key_of_a_removed_user_is_401_even_if_not_revoked(
    acme: Store, service_with: ServiceFactory
) -> None:
    service = service_with()
    _, token = read_key(acme)
    # Removed by another tool that did not revoke its keys: the user row is gone.
    row = u.require_user(acme, "acme", "bob")
    acme.insert(
        "users",
        {
            "account_id": ["acme"],
            "user_id": ["bob"],
            "email": [row["email"]],
            "updated_at": [row["updated_at"] + timedelta(seconds=1)],
            "is_deleted": [1],
        },
    )
    answer = service.get(BALANCE, token)
    assert answer.status == 401 and "removed" in answer.json()["detail"]


def test_failed_authentications_are_rate_limited_per_client(
    acme: Store, service_with: ServiceFactory
) -> None:
    service = service_with(ingest_auth_failure_burst=3, ingest_auth_failure_per_second=0.01)
    _, token = read_key(acme)
    wrong = token[:-4] + "AAAA"
    for _ in range(3):
        assert service.get(BALANCE, wrong, client="10.0.0.9").status == 401
    limited = service.get(BALANCE, token, client="10.0.0.9")  # even a good key now
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    sql = service.post("/api/v1/sql", {"sql": "SELECT 1"}, ADMIN_TOKEN + "x")
    assert sql.status == 401  # from 127.0.0.1: its own bucket
    assert service.get(BALANCE, token, client="10.0.0.10").status == 200
    text = generate_latest(service.registry).decode()
    assert 'meterhouse_read_auth_failures_total{reason="bad_secret"} 3.0' in text
    assert 'meterhouse_read_auth_failures_total{reason="rate_limited"} 1.0' in text


def test_metrics_count_refusals_and_never_show_a_secret(
    acme: Store, service_with: ServiceFactory
) -> None:
    service = service_with()
    _, token = read_key(acme)
    assert service.get("/api/v1/accounts/globex/balance", token).status == 404
    assert service.get("/api/v1/accounts/acme/users", token).status == 403
    metrics = service.get("/metrics")
    assert metrics.status == 200
    assert 'meterhouse_read_refused_total{endpoint="balance",status="404"} 1.0' in metrics.text
    assert 'meterhouse_read_refused_total{endpoint="users",status="403"} 1.0' in metrics.text
    secret = token.split("_", 2)[2]
    assert secret not in metrics.text and ADMIN_TOKEN not in metrics.text


def test_the_admin_endpoint_makes_read_keys(acme: Store, service_with: ServiceFactory) -> None:
    service = service_with()
    body = {"account_id": "acme", "user_id": "bob", "expires_in": "30d", "actor": "cli:ops"}
    assert service.post("/api/v1/access/keys", body).status == 401
    _, bob = read_key(acme)
    assert service.post("/api/v1/access/keys", body, bob).status == 403
    made = service.post("/api/v1/access/keys", body, ADMIN_TOKEN)
    assert made.status == 201, made.text
    assert made.json()["key"]["user_id"] == "bob" and made.json()["key"]["purpose"] == "read"
    assert service.get(BALANCE, made.json()["token"]).status == 200
    for bad, detail in [
        ({"account_id": "acme"}, "needs account_id and user_id"),
        ({**body, "user_id": "nobody"}, "no user nobody"),
        ({**body, "expires_in": "soon"}, "cannot read duration"),
        ({**body, "user_id": 7}, "must be a string"),
    ]:
        answer = service.post("/api/v1/access/keys", bad, ADMIN_TOKEN)
        assert answer.status == 400 and detail in answer.json()["detail"], answer.text
