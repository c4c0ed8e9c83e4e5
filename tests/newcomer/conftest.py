"""The CLI as a newcomer meets it, run in this process on this test's own database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from meterhouse.cli import cli
from meterhouse.store.base import Store

Run = Callable[..., Result]


def runner_for(url: str, database: str) -> Run:
    env = {
        "MH_CLICKHOUSE_URL": url,
        "MH_CLICKHOUSE_DATABASE": database,
        "MH_LOG_LEVEL": "warning",
    }

    def invoke(*args: str, **extra: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={**env, **extra})

    return invoke


@pytest.fixture
def run(migrated_store: Store, chdb_data_dir: Path) -> Run:
    """`meterhouse ...` on a migrated database of this test's own."""
    return runner_for(f"chdb://{chdb_data_dir}", migrated_store.database)


@pytest.fixture
def run_unmigrated(chdb_data_dir: Path, database_name: str) -> Run:
    """`meterhouse ...` on a database nobody migrated."""
    return runner_for(f"chdb://{chdb_data_dir}", database_name)
