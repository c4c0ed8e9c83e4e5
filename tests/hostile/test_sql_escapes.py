"""Issue 13, item 9: ad-hoc SQL reaches only meterhouse's database. No table function that
reads or writes files, URLs, other servers or processes, no SETTINGS that lift a limit,
with or without "write", through the real service's /api/v1/sql and on both backends."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from meterhouse.access.clickhouse_plan import Existing as PlanExisting
from meterhouse.access.clickhouse_plan import Limits, build_plan
from meterhouse.adhoc_sql import AdhocLimits, AdhocSqlError, run_adhoc
from meterhouse.store.base import Store
from tests.durability.service import Service

ADMIN = {"Authorization": "Bearer durability-admin"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(tmp_path_factory.mktemp("sql")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def loopback_url() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request it gets."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret\n")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/x", seen
    server.shutdown()


def sql(service: Service, statement: str, write: bool = False) -> requests.Response:
    return requests.post(
        f"{service.url}/api/v1/sql",
        json={"sql": statement, "write": write},
        headers=ADMIN,
        timeout=60,
    )


@pytest.mark.slow
def test_host_files_cannot_be_read_or_written(service: Service, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me\n")
    target = tmp_path / "written.csv"
    for statement, write in (
        (f"SELECT * FROM file('{secret}', 'LineAsString')", False),
        (f"SELECT file('{secret}')", False),
        (f"SELECT * FROM (SELECT * FROM file('{secret}', 'LineAsString'))", False),
        (f"SELECT 1 WHERE 'x' IN (SELECT * FROM file('{secret}', 'LineAsString'))", False),
        (f"INSERT INTO FUNCTION file('{target}', 'CSV') SELECT 1", True),
        (f"CREATE TABLE leak (a String) ENGINE = File(CSV, '{target}')", True),
    ):
        answer = sql(service, statement, write)
        assert answer.status_code == 400, (statement, answer.text)
        assert "do not read me" not in answer.text
    assert not target.exists()


@pytest.mark.slow
def test_urls_other_servers_and_processes_are_unreachable(
    service: Service, loopback_url: tuple[str, list[str]]
) -> None:
    url, seen = loopback_url
    for statement in (
        f"SELECT * FROM url('{url}', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
        "SELECT * FROM executable('id', 'LineAsString', 'x String')",
        f"SELECT * FROM s3('{url}', 'LineAsString')",
    ):
        answer = sql(service, statement)
        assert answer.status_code == 400, (statement, answer.text)
    assert seen == []


@pytest.mark.slow
def test_no_setting_lifts_a_limit(service: Service) -> None:
    for statement in (
        "SELECT * FROM (SELECT sleep(1) SETTINGS max_execution_time = 3600)",
        "SELECT count() FROM usage_events SETTINGS max_execution_time = 3600",
        "SELECT * FROM (SELECT 1) SETTINGS readonly = 0",
    ):
        answer = sql(service, statement)
        assert answer.status_code == 400, (statement, answer.text)
        assert "SETTINGS" in answer.json()["detail"]
    refused = sql(service, "SET max_execution_time = 3600", write=True)
    assert refused.status_code == 400
    # What stays allowed: reading meterhouse's tables, generators, the engine's own tables.
    assert sql(service, "SELECT count() FROM accounts").status_code == 200
    assert sql(service, "SELECT sum(number) FROM numbers(10)").json()["rows"] == [[45]]
    assert sql(service, "SELECT name FROM system.tables LIMIT 1").status_code == 200
    # A setting that only shapes results stays allowed (CLI commands send it).
    assert sql(service, "SELECT 1 SETTINGS join_use_nulls = 1").status_code == 200
    hidden = "SELECT * FROM (SELECT 1 SETTINGS join_use_nulls = 1, max_execution_time = 99)"
    assert sql(service, hidden).status_code == 400


@pytest.mark.parametrize("backend", ["chdb", "server"])
def test_the_same_rules_on_both_backends(make_store: Callable[..., Store], backend: str) -> None:
    store = make_store(backend)
    limits = AdhocLimits(100, 5)
    for statement in (
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
        "SELECT 1 SETTINGS max_execution_time = 3600",
        "SELECT * FROM other_database.t",
    ):
        with pytest.raises(AdhocSqlError):
            run_adhoc(store, statement, limits=limits)
    assert run_adhoc(store, "SELECT 1 AS one", limits=limits).scalar() == 1


def test_generated_users_profile_pins_the_limits() -> None:
    plan = build_plan(
        "meterhouse", [], [], PlanExisting(), Limits(1000, 30), password_hash=lambda _: "x"
    )
    profile = next(s.sql for s in plan.statements if s.kind == "profile")
    for constraint in (
        "readonly = 1 CONST",
        "allow_ddl = 0 CONST",
        "max_execution_time = 30 MAX 30",
        "max_result_rows = 1000 CONST",
    ):
        assert constraint in profile
