"""Item 5 of issue 15: each error says what went wrong and what to do; exit codes stay."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.newcomer.conftest import Run, runner_for
from tests.support.cli import METERHOUSE, cli_env, free_port, meterhouse, running_service


def test_a_store_without_schema_says_run_migrate(run_unmigrated: Run) -> None:
    done = run_unmigrated("accounts", "list")
    assert done.exit_code == 1
    assert "meterhouse migrate" in done.output
    assert "UNKNOWN_TABLE" not in done.output and "error 60" not in done.output


@pytest.mark.slow
def test_a_mistyped_store_directory_is_not_created(tmp_path: Path) -> None:
    # A subprocess: chdb opens one directory per process, and this one must be new.
    typo = tmp_path / "typo"
    done = subprocess.run(
        [METERHOUSE, "accounts", "list"],
        env=cli_env(typo),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"no meterhouse store at {typo}" in done.stderr
    assert "meterhouse migrate" in done.stderr and "Traceback" not in done.stderr
    assert not typo.exists()


def test_an_unreachable_server_is_one_clear_line_with_the_password_masked() -> None:
    url = f"http://default:s3cret@127.0.0.1:{free_port()}/meterhouse"
    done = runner_for(url, "meterhouse")("accounts", "list", MH_LOG_LEVEL="info")
    assert done.exit_code == 1
    assert "cannot reach the ClickHouse server" in done.output
    assert "MH_CLICKHOUSE_URL" in done.output
    assert "Retry(" not in done.output and "s3cret" not in done.output


@pytest.mark.slow
def test_a_port_in_use_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**cli_env(tmp_path / "store"), "PATH": os.environ.get("PATH", "")}
        done = subprocess.run(
            [METERHOUSE, "run", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr and "--port" in done.stderr


def test_a_sql_syntax_error_points_into_the_users_query(run: Run) -> None:
    done = run("sql", "SELEC 1")
    assert done.exit_code == 1
    assert "syntax error" in done.output and "  SELEC 1\n" in done.output
    assert "formatQuerySingleLine" not in done.output
    unknown = run("sql", "SELECT nope FROM accounts")
    assert unknown.exit_code == 1
    assert "nope" in unknown.output and "LIMIT 100000" not in unknown.output


def test_an_inverted_window_is_refused(run: Run) -> None:
    done = run("events", "--level", "error", "--since", "1h", "--until", "2h")
    assert done.exit_code == 2
    assert "is not after --since" in done.output


def test_a_mistyped_account_gets_a_suggestion(run: Run) -> None:
    assert run("accounts", "create", "acme").exit_code == 0
    for args in (("balance",), ("statement",), ("budgets", "status")):
        done = run(*args, "--account", "acm")
        assert done.exit_code == 1, done.output
        assert "Did you mean acme?" in done.output, done.output


@pytest.mark.slow
def test_errors_through_the_running_service_read_the_same(tmp_path: Path) -> None:
    # Two processes: `meterhouse run` holds the store, the command asks it.
    data = tmp_path / "store"
    assert meterhouse(data, "migrate").returncode == 0
    assert meterhouse(data, "accounts", "create", "acme").returncode == 0
    with running_service(data):
        syntax = meterhouse(data, "sql", "SELEC 1")
        assert syntax.returncode == 1
        assert "syntax error in the SQL" in syntax.stderr and "  SELEC 1\n" in syntax.stderr
        assert "formatQuerySingleLine" not in syntax.stderr
        wrong = meterhouse(data, "balance", "--account", "acm")
        assert wrong.returncode == 1 and "Did you mean acme?" in wrong.stderr
