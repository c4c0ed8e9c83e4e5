"""The service-backed store (a running `meterhouse run`'s admin store endpoint) passes the
store contract: the cases of tests/store/test_contract.py, writes included, run through a
real `meterhouse run`, once on the embedded store and once on the server backend (the
HTTP shim): imported below, pytest collects them here again with this module's `store`.
Then what only this backend has: the service's own refusals and bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from meterhouse.errors import ServiceUnavailableError, StoreError
from meterhouse.store.base import Store
from meterhouse.store.service_backend import ServiceStore
from tests.conftest import StoreFactory
from tests.store.test_contract import (  # noqa: F401
    SAME_QUERIES,
    TYPES_COLUMNS,
    count_rows,
    create_simple_table,
    create_types_table,
    test_binds_aware_datetime_converted_to_utc,
    test_binds_decimals,
    test_binds_integers,
    test_binds_naive_datetime_as_utc,
    test_binds_string_arrays,
    test_binds_string_with_quotes_and_backslashes,
    test_column_length_mismatch_raises_value_error,
    test_command_binds_parameters,
    test_command_errors_carry_clickhouse_codes,
    test_command_runs_ddl,
    test_datetimes_come_back_aware_in_utc,
    test_decimals_keep_every_digit,
    test_empty_insert_returns_zero,
    test_insert_arrow_errors_carry_clickhouse_codes,
    test_insert_arrow_of_no_rows_returns_zero,
    test_insert_arrow_reads_back_exact_values,
    test_insert_arrow_rejects_unsafe_table_names,
    test_insert_into_unknown_table_raises_store_error,
    test_insert_of_some_columns_fills_defaults,
    test_insert_of_unknown_column_raises_store_error,
    test_insert_of_values_that_do_not_fit_raises_store_error,
    test_insert_reads_back_exact_values,
    test_insert_rejects_unsafe_table_names,
    test_insert_without_columns_raises_value_error,
    test_missing_parameter_is_a_store_error,
    test_parameters_filter_a_table,
    test_query_arrow_gives_typed_columns,
    test_query_arrow_of_no_rows_is_an_empty_table,
    test_query_errors_carry_clickhouse_codes,
    test_readonly_setting_rejects_insert,
    test_release_memory_is_safe_at_any_time,
    test_same_token_is_stored_once_in_table_and_view,
    test_settings_apply_to_insert_values_command,
    test_settings_apply_to_the_query,
    test_simple_aggregate_columns_read_as_their_values,
    test_unknown_setting_is_a_store_error,
)
from tests.support.cli import RunningService, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ADMIN = "service-store-admin"


@pytest.fixture(scope="module", params=("chdb", "server"))
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """`meterhouse run` on the named backend, shared by this module's tests."""
    root = tmp_path_factory.mktemp(f"service_{request.param}")
    env = {"MH_ADMIN_TOKEN": ADMIN, "MH_SPOOL_DIR": str(root / "spool")}
    if request.param == "server":
        shim: str = request.getfixturevalue("clickhouse_http_url")
        env["MH_CLICKHOUSE_URL"] = shim.replace("http://", "http://default:@") + "/via_service"
    with running_service(root / "data", **env) as running:
        yield running


@pytest.fixture
def store(service: RunningService) -> Iterator[Store]:
    """The service's store, as a CLI command gets it; tables a test makes are dropped."""
    opened = ServiceStore(service.url, ADMIN)
    before = set(_tables(opened))
    yield opened
    for table in sorted(set(_tables(opened)) - before):
        opened.command(f"DROP TABLE IF EXISTS {table}")
    opened.close()


def _tables(store: Store) -> list[str]:
    result = store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
    return [str(name) for name in result.column("name")]


def test_store_is_the_services_database_and_writes(store: Store) -> None:
    """The contract's own database case, for a database the service migrated."""
    assert store.query("SELECT currentDatabase()").scalar() == store.database
    create_simple_table(store)
    assert "simple" in _tables(store)
    assert "usage_events" in _tables(store)  # `meterhouse run` migrated it
    caps = store.capabilities
    assert caps.writes and caps.data_dir is None and not caps.access_management


def test_answers_as_a_local_store(
    store: Store, make_store: StoreFactory, database_name: str
) -> None:
    """The same rows and types through query and query_arrow as a store opened directly."""
    reference = make_store("server", f"{database_name}_ref")
    for target in (store, reference):
        create_types_table(target)
        target.insert("typed", TYPES_COLUMNS)
    more: list[tuple[str, dict[str, Any] | None]] = [
        (
            "SELECT map(toUInt32(1), toDecimal64('2.5', 4)) AS m, "
            "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS u, [1.5, nan] AS f, "
            "CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS missing, true AS yes",
            None,
        )
    ]
    for sql, params in [*SAME_QUERIES, *more]:
        assert str(store.query(sql, params)) == str(reference.query(sql, params)), sql  # NaN
        through_service = store.query_arrow(sql, params)
        direct = reference.query_arrow(sql, params)
        assert through_service.column_names == direct.column_names
        assert str(through_service.to_pylist()) == str(direct.to_pylist()), sql  # NaN


def test_large_arrow_inserts_go_in_slices_stored_once(service: RunningService) -> None:
    sliced = ServiceStore(service.url, ADMIN, batch_bytes=64 * 1024)
    try:
        sliced.command(
            "CREATE TABLE sliced (id UInt32, name String) ENGINE = MergeTree ORDER BY id "
            "SETTINGS non_replicated_deduplication_window = 100"
        )
        rows = 50_000
        data = pa.table(
            {"id": pa.array(range(rows), pa.uint32()), "name": [f"n{i:06d}" for i in range(rows)]}
        )
        assert data.nbytes > 4 * sliced.batch_bytes
        settings = {"insert_deduplication_token": "big-batch"}
        for _ in range(2):  # a replay of the same rows stores nothing twice
            assert sliced.insert_arrow("sliced", data, settings=settings) == rows
        assert count_rows(sliced, "sliced") == rows
        assert sliced.query("SELECT uniqExact(id) FROM sliced").scalar() == rows
    finally:
        sliced.command("DROP TABLE IF EXISTS sliced")
        sliced.close()


def test_the_endpoint_is_for_the_admin_token_and_bounded(service: RunningService) -> None:
    url = f"{service.url}/api/v1/store/command"
    statement = {"sql": "CREATE TABLE stolen (x UInt8) ENGINE = Memory"}
    for headers in ({}, {"Authorization": "Bearer not-the-admin-token"}):
        answer = requests.post(url, json=statement, headers=headers, timeout=30)
        assert answer.status_code == 401, answer.text
    admin = {"Authorization": f"Bearer {ADMIN}"}
    too_big = {"sql": "SELECT 1", "params": {"x": "a" * (2 * 1024 * 1024)}}
    answer = requests.post(f"{service.url}/api/v1/store/query", json=too_big, headers=admin)
    assert answer.status_code == 413, answer.text
    for body in (b"not json", b"[1]", json.dumps({"sql": 1}).encode()):
        answer = requests.post(f"{service.url}/api/v1/store/query", data=body, headers=admin)
        assert answer.status_code == 400, answer.text
    answer = requests.post(
        f"{service.url}/api/v1/store/insert-arrow?table=x", data=b"not arrow", headers=admin
    )
    assert answer.status_code == 400 and "Arrow" in answer.json()["detail"]
    answer = requests.post(
        f"{service.url}/api/v1/store/insert-arrow?table=x;DROP", data=b"", headers=admin
    )
    assert answer.status_code == 400, answer.text
    odd_statements = [
        {"sql": "SELECT {x:String}", "params": {"x": {"nested": [1, {"deeper": None}]}}},
        {"sql": "SELECT 1", "settings": {"max_threads": {"not": "a number"}}},
        {"sql": "SELECT 1", "settings": {"no such; setting": 1}},
        {"sql": "SELECT 1", "params": [1, 2]},
        {"sql": "SELECT 1", "params": {"x": 10**400}},
    ]
    for odd in odd_statements:  # whatever the store makes of them, never a 500
        answer = requests.post(f"{service.url}/api/v1/store/query", json=odd, headers=admin)
        assert answer.status_code in (200, 400), (odd, answer.text)
        assert answer.json()
    refused = requests.post(
        f"{service.url}/api/v1/store/query", json=odd_statements[3], headers=admin
    )
    assert refused.status_code == 400 and "params" in refused.json()["detail"]
    tables = ServiceStore(service.url, ADMIN)
    assert "stolen" not in _tables(tables)
    tables.close()
    # The ad-hoc SQL endpoint stays read-only for the same token.
    sandbox = requests.post(
        f"{service.url}/api/v1/sql", json={"sql": "INSERT INTO sync_state SELECT *"}, headers=admin
    )
    assert sandbox.status_code == 400 and "read-only" in sandbox.json()["detail"]


def test_a_wrong_token_and_a_silent_service_are_store_errors(service: RunningService) -> None:
    with pytest.raises(StoreError) as refused:
        ServiceStore(service.url, "wrong")
    assert "401" in str(refused.value) or "admin token" in str(refused.value)
    with pytest.raises(ServiceUnavailableError, match="did not answer"):
        ServiceStore("http://127.0.0.1:9", ADMIN)


NOT_LOOPBACK = textwrap.dedent(
    """
    import socket, sys
    # An address of this machine other than loopback, if it has one.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        print(probe.getsockname()[0])
    except OSError:
        print("")
    """
)


def test_the_endpoint_refuses_other_addresses(tmp_path: Path) -> None:
    """Listening on every address, the store endpoint still answers loopback only."""
    found = subprocess.run(
        [sys.executable, "-c", NOT_LOOPBACK], capture_output=True, text=True, check=True
    )
    address = found.stdout.strip()
    assert address and not address.startswith("127."), "this machine has no other address"
    env = {"MH_ADMIN_TOKEN": ADMIN, "MH_SPOOL_DIR": str(tmp_path / "spool")}
    with running_service(tmp_path / "data", host="0.0.0.0", **env) as running:
        port = running.url.rsplit(":", 1)[1]  # the URL names 127.0.0.1
        admin = {"Authorization": f"Bearer {ADMIN}"}
        statement = {"sql": "SELECT 1"}
        remote = requests.post(
            f"http://{address}:{port}/api/v1/store/query", json=statement, headers=admin
        )
        assert remote.status_code == 403, remote.text
        assert "own machine" in remote.json()["detail"]
        local = requests.post(f"{running.url}/api/v1/store/query", json=statement, headers=admin)
        assert local.status_code == 200
