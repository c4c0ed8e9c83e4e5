"""Every read endpoint x every key x every account: nothing leaks across tenants or scopes.

The expected answers come from world.visible_places, an oracle written from the rules in
docs/access.md, not from meterhouse/access. A leak is any marker (MK-<account>-<team>-
<project>) or email the caller may not see appearing anywhere in an answer.
"""

from __future__ import annotations

import re
from typing import Final

import pytest

from tests.access.conftest import ADMIN_TOKEN, Service
from tests.access.world import (
    ACCOUNTS,
    EXTRA_ACCOUNT,
    PLACES,
    USERS,
    World,
    email,
    marker,
    visible_places,
)

# endpoint -> (path, oracle action, whether the answer lists the visible rows' markers)
ENDPOINTS: Final = {
    "balance": ("/api/v1/accounts/{a}/balance", "balance", False),
    "statement": ("/api/v1/accounts/{a}/statement", "statement", True),
    "jobs": ("/api/v1/accounts/{a}/jobs", "jobs", True),
    "runs": ("/api/v1/accounts/{a}/jobs/job-data/runs", "jobs", False),
    "events": ("/api/v1/accounts/{a}/events?since=1d", "events", True),
    "users": ("/api/v1/accounts/{a}/users", "users", False),
}
TARGETS: Final = (*ACCOUNTS, EXTRA_ACCOUNT, "nowhere")
ALL_MARKERS: Final = {
    (account, place): marker(account, *place) for account in ACCOUNTS for place in PLACES
}
_EMAIL: Final = re.compile(r"[\w.-]+@([\w-]+)\.example")


def expected_status(account: str, user: str, endpoint: str, target: str) -> int:
    if target != account:
        return 404
    places = visible_places(account, user, ENDPOINTS[endpoint][1])
    if not places:
        return 403
    if endpoint == "runs" and ("data", "churn") not in places:
        return 404  # the job exists, but not for this caller
    return 200


def assert_no_leak(text: str, account: str, visible: set[tuple[str, str]], where: str) -> None:
    for (other_account, place), mark in ALL_MARKERS.items():
        if mark in text:
            assert other_account == account and place in visible, f"{where}: leaked {mark}"
    foreign = {domain for domain in _EMAIL.findall(text) if domain != account}
    assert not foreign, f"{where}: leaked users of {foreign}"


@pytest.mark.parametrize("account", ACCOUNTS)
@pytest.mark.parametrize("user", list(USERS))
def test_every_endpoint_for_every_user_key(
    service: Service, world: World, account: str, user: str
) -> None:
    token = world.tokens[(account, user)]
    for endpoint, (path, action, lists_rows) in ENDPOINTS.items():
        not_found_bodies = []
        for target in TARGETS:
            where = f"{account}/{user} -> {endpoint} of {target}"
            answer = service.get(path.format(a=target), token)
            expected = expected_status(account, user, endpoint, target)
            assert answer.status == expected, f"{where}: {answer.status} {answer.text[:300]}"
            visible = visible_places(account, user, action) if expected == 200 else set()
            assert_no_leak(answer.text, account, visible, where)
            if expected == 404 and target != account:
                not_found_bodies.append(answer.text.replace(target, "<account>"))
            if expected == 200 and lists_rows:
                for place in visible:
                    assert marker(account, *place) in answer.text, f"{where}: lacks {place}"
            if expected == 200 and endpoint == "users":
                assert email(account, "nobody") in answer.text
        # Existing or not, another tenant's account answers exactly the same.
        assert len(set(not_found_bodies)) == 1, not_found_bodies


@pytest.mark.parametrize("account", ACCOUNTS)
@pytest.mark.parametrize("user", list(USERS))
def test_read_keys_never_run_sql(service: Service, world: World, account: str, user: str) -> None:
    answer = service.post("/api/v1/sql", {"sql": "SELECT 1"}, world.tokens[(account, user)])
    assert answer.status == 403
    assert "admin token only" in answer.json()["detail"]
    assert "MK-" not in answer.text


def test_admin_token_reads_every_account_and_runs_sql(service: Service) -> None:
    for endpoint, (path, _, lists_rows) in ENDPOINTS.items():
        for account in ACCOUNTS:
            answer = service.get(path.format(a=account), ADMIN_TOKEN)
            assert answer.status == 200, (endpoint, answer.text[:300])
            if lists_rows:
                assert all(marker(account, *place) in answer.text for place in PLACES)
    sql = service.post("/api/v1/sql", {"sql": "SELECT 42 AS x"}, ADMIN_TOKEN)
    assert sql.status == 200 and sql.json()["rows"] == [[42]]


def test_an_account_bound_admin_key_reads_its_account_only(service: Service, world: World) -> None:
    token = world.extra["admin-key-acme"]
    for endpoint, (path, _, _) in ENDPOINTS.items():
        assert service.get(path.format(a="acme"), token).status == 200, endpoint
        other = service.get(path.format(a="globex"), token)
        assert other.status == 404 and "MK-globex" not in other.text, endpoint
    assert service.post("/api/v1/sql", {"sql": "SELECT 1"}, token).status == 403


@pytest.mark.parametrize("name", ["ingest-key", "userless-read-key"])
def test_keys_without_roles_read_nothing(service: Service, world: World, name: str) -> None:
    token = world.extra[name]
    for endpoint, (path, _, _) in ENDPOINTS.items():
        for account in (*ACCOUNTS, "-", ""):
            answer = service.get(path.format(a=account), token)
            assert answer.status in (403, 404), (name, endpoint, account, answer.status)
            assert "MK-" not in answer.text and "@" not in answer.text


@pytest.mark.parametrize(
    "token", [None, "", "nope", "mh_0123456789abcdef_" + "x" * 43, ADMIN_TOKEN + "x"]
)
def test_no_valid_token_is_401_everywhere(service: Service, token: str | None) -> None:
    for endpoint, (path, _, _) in ENDPOINTS.items():
        answer = service.get(path.format(a="acme"), token)
        assert answer.status == 401, endpoint
        assert answer.headers["content-type"] == "application/problem+json"
        assert "MK-" not in answer.text
    assert service.post("/api/v1/sql", {"sql": "SELECT 1"}, token).status == 401


# -- scoped statements, runs and log searches ------------------------------------------


@pytest.mark.parametrize(
    ("user", "query", "status", "places"),
    [
        ("viewer-team", "", 200, {("data", "churn")}),
        ("viewer-team", "project=churn", 200, {("data", "churn")}),
        ("viewer-team", "team=data&project=churn", 200, {("data", "churn")}),
        ("viewer-team", "project=search", 403, set()),
        ("viewer-team", "team=ml", 403, set()),
        ("viewer-team", "team=ml&project=churn", 403, set()),
        ("viewer-proj", "team=data", 403, set()),
        ("member-proj", "project=search", 200, {("ml", "search")}),
        ("member-proj", "team=ml", 403, set()),
        ("viewer-team", "format=csv", 403, set()),
        ("viewer-team", "format=html", 403, set()),
        ("billing", "team=ml", 200, {("ml", "search"), ("", "")}),  # grants are account-level
        ("billing", "format=csv", 200, set(PLACES)),
    ],
)
def test_statement_scopes(
    service: Service,
    world: World,
    user: str,
    query: str,
    status: int,
    places: set[tuple[str, str]],
) -> None:
    answer = service.get(f"/api/v1/accounts/acme/statement?{query}", world.tokens[("acme", user)])
    assert answer.status == status, answer.text[:300]
    assert_no_leak(answer.text, "acme", places, f"{user} {query}")
    for place in places:
        assert marker("acme", *place) in answer.text


def test_a_scoped_statement_shows_no_account_level_figure(service: Service, world: World) -> None:
    scoped = service.get("/api/v1/accounts/acme/statement", world.tokens[("acme", "viewer-team")])
    whole = service.get("/api/v1/accounts/acme/statement?team=data", ADMIN_TOKEN)
    assert scoped.status == whole.status == 200
    body, full = scoped.json(), whole.json()
    assert set(body["summary"]) == {"usage_debits", "usd", "events", "unpriced_events"}
    assert body["summary"]["usage_debits"] == full["summary"]["usage_debits"] == "10"
    assert {line["type"] for line in body["lines"]} == {"usage"}
    assert all("balance" not in line for line in body["lines"])
    assert "revision" not in body and "content_hash" not in body
    # The admin's team statement does carry account-level figures: that is what is removed.
    assert "closing_balance" in full["summary"] and any(
        line["type"] in ("grant", "other_usage") for line in full["lines"]
    )


def test_runs_of_a_job_outside_the_scope_are_404_like_a_missing_job(
    service: Service, world: World
) -> None:
    token = world.tokens[("acme", "member-team")]
    hidden = service.get("/api/v1/accounts/acme/jobs/job-ml/runs", token)
    missing = service.get("/api/v1/accounts/acme/jobs/job-nothing/runs", token)
    assert hidden.status == missing.status == 404
    assert hidden.json()["detail"].replace("job-ml", "X") == missing.json()["detail"].replace(
        "job-nothing", "X"
    )
    seen = service.get("/api/v1/accounts/acme/jobs/job-data/runs", token)
    assert seen.status == 200 and seen.json()["runs"][0]["run"] == "run-data"


@pytest.mark.parametrize(
    "query",
    [
        "run=run-ml",
        "run=run-none",
        "since=1d&job=job-ml",
        "since=1d&search=MK-acme-ml",
        "since=1d&kind=scheduler",
    ],
)
def test_log_filters_cannot_reach_outside_the_scope(
    service: Service, world: World, query: str
) -> None:
    answer = service.get(
        f"/api/v1/accounts/acme/events?{query}", world.tokens[("acme", "member-team")]
    )
    assert answer.status == 200, answer.text
    assert_no_leak(answer.text, "acme", {("data", "churn")}, query)
    assert all(row["account"] == "acme" for row in answer.json()["events"])


def test_bad_read_input_is_a_clear_400(service: Service, world: World) -> None:
    token = world.tokens[("acme", "owner")]
    assert service.get("/api/v1/accounts/acme/events", token).status == 400
    limit = service.get("/api/v1/accounts/acme/jobs/job-data/runs?limit=lots", token)
    assert limit.status == 400 and "whole number" in limit.json()["detail"]
    level = service.get("/api/v1/accounts/acme/events?since=1h&level=loud", token)
    assert level.status == 400 and "log level" in level.json()["detail"]
    many = service.get("/api/v1/accounts/acme/statement", world.tokens[("acme", "nobody")])
    assert many.status == 403
