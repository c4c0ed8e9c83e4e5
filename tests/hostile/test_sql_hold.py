"""Issue 13, item 9 (last part): an admin's long ad-hoc query must not hold a tenant's
request. The embedded engine runs one statement at a time (chdb serialises every query of
a process, and neither cancel nor a progress callback stops a running one), so the
service bounds ad-hoc SQL there by MH_SQL_SHARED_MAX_SECONDS and says what to do instead.
Against the real `meterhouse run`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
from click.testing import CliRunner

from meterhouse.cli import cli
from tests.durability.service import Service

ADMIN = {"Authorization": "Bearer durability-admin"}
# About 20 s of work on one core: far beyond the shared limit, well within MH_SQL_MAX_SECONDS.
LONG = "SELECT count() FROM numbers(400000000) WHERE sipHash64(number) % 7 = 1"


def test_a_long_admin_query_holds_a_tenant_read_for_the_shared_limit_at_most(
    tmp_path: Path,
) -> None:
    service = Service(tmp_path, env={"MH_SQL_SHARED_MAX_SECONDS": "2"}).start()
    try:
        answers: dict[str, requests.Response | float] = {}

        def long_query() -> None:
            started = time.monotonic()
            answers["sql"] = requests.post(
                f"{service.url}/api/v1/sql", json={"sql": LONG}, headers=ADMIN, timeout=120
            )
            answers["sql_seconds"] = time.monotonic() - started

        thread = threading.Thread(target=long_query)
        thread.start()
        time.sleep(0.5)  # the long query holds the engine now
        started = time.monotonic()
        balance = requests.get(
            f"{service.url}/api/v1/accounts/acme/balance", headers=ADMIN, timeout=120
        )
        waited = time.monotonic() - started
        thread.join()

        assert balance.status_code == 200, balance.text
        assert waited < 4.0, f"the tenant read waited {waited:.1f} s behind ad-hoc SQL"
        refused = answers["sql"]
        assert isinstance(refused, requests.Response)
        assert refused.status_code == 400
        detail = refused.json()["detail"]
        assert "longer than 2 s" in detail and "MH_SQL_SHARED_MAX_SECONDS" in detail
        assert "stop the service" in detail
        assert answers["sql_seconds"] < 6.0
        # Short ad-hoc queries still work, and the service stays up.
        quick = requests.post(
            f"{service.url}/api/v1/sql", json={"sql": "SELECT 1 AS one"}, headers=ADMIN, timeout=30
        )
        assert quick.status_code == 200 and quick.json()["rows"] == [[1]]

        # `meterhouse sql` goes through the service's store while the service holds the
        # engine: the same bound, the same advice.
        env = {"MH_CLICKHOUSE_URL": f"chdb://{service.data_dir}", "MH_SQL_SHARED_MAX_SECONDS": "2"}
        started = time.monotonic()
        cut = CliRunner().invoke(cli, ["sql", LONG], env=env)
        assert cut.exit_code == 1, cut.output
        assert "MH_SQL_SHARED_MAX_SECONDS" in cut.output
        assert time.monotonic() - started < 6.0
    finally:
        service.stop()
