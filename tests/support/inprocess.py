"""`meterhouse ...` run in this pytest process (click's CliRunner), on this test's database.

For tests of what a command does, where the console script's own start is not what is
tested: the same command tree, options, output and exit codes, without the ~2 s that a
new Python process spends importing. chdb opens one data directory per process, so the
commands use the session's (``chdb_data_dir``) with a database of the test's own.
Registered for every test by tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from meterhouse.cli import cli


@dataclass(frozen=True)
class Done:
    """What a finished command left: as ``subprocess.CompletedProcess`` names it."""

    returncode: int
    stdout: str
    stderr: str


InProcess = Callable[..., Done]


def in_process(url: str, database: str) -> InProcess:
    base = {"MH_CLICKHOUSE_URL": url, "MH_CLICKHOUSE_DATABASE": database, "MH_LOG_LEVEL": "warning"}

    def invoke(*args: str, stdin: str | None = None, **env: str) -> Done:
        result = CliRunner().invoke(cli, list(args), input=stdin, env={**base, **env})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Done(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def meterhouse_here(chdb_data_dir: Path, database_name: str) -> InProcess:
    """`meterhouse ...` in this process on a database of this test's own (not migrated)."""
    return in_process(f"chdb://{chdb_data_dir}", database_name)


@dataclass(frozen=True)
class Demo:
    cli: InProcess  # `meterhouse ...` on the demo's store
    log: str  # what `meterhouse demo` printed on stderr


@pytest.fixture(scope="session")
def demo(chdb_data_dir: Path) -> Demo:
    """`meterhouse demo --days 2 --scale 0.2`, run once per pytest process, in it.

    Shared by the tests that read a realistic store through the CLI: they must leave it as
    they found it (a test that changes something puts it back, as the reprice test does).
    """
    cli = in_process(f"chdb://{chdb_data_dir}", f"t_demo_{uuid.uuid4().hex[:8]}")
    done = cli("demo", "--days", "2", "--scale", "0.2")
    assert done.returncode == 0, done.stderr
    return Demo(cli, done.stderr)
