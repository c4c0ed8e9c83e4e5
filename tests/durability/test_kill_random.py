"""SIGKILL at 20+ random moments of a streamed run: every table, rollup, claim and statement
equals what the client was told was acknowledged.

The kills land wherever the service is: answering, spooling, or in the middle of a drain
batch's inserts (claims written, event rows written, a view's part not yet). The spool's
``inflight`` file says which: a kill whose inflight batch ends past the checkpoint hit a
batch that was being written. The test asserts that several kills did.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from meterhouse.rating.rollups import USAGE_ROLLUPS
from tests.durability.service import SOURCE, Service, expected_rows, killed_inside_a_batch
from tests.durability.test_kill import check_exactly_once, stream_until_killed
from tests.support.cli import meterhouse

KILLS = 20
# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def rollup_mismatches(service: Service) -> list[str]:
    """Each rollup against a recount from the raw rows it is fed by."""
    problems: list[str] = []
    for rollup in USAGE_ROLLUPS:  # each view-fed usage rollup, as reprice checks them
        stored = sorted([str(v) for v in row] for row in service.sql(rollup.read("1")))
        recount = sorted(
            [str(v) for v in row] for row in service.sql(rollup.select.format(range="1"))
        )
        if stored != recount:
            problems.append(
                f"{rollup.table} differs from usage_events: {len(stored)} vs {len(recount)} keys"
            )
    runs = service.sql("SELECT account_id, run_id, status FROM job_runs_current ORDER BY 1, 2")
    raw_runs = service.sql(
        "SELECT account_id, run_id, argMax(status, (status_rank, event_time)) "
        "FROM job_run_events GROUP BY 1, 2 ORDER BY 1, 2"
    )
    if runs != raw_runs:
        problems.append(f"job_runs differs from job_run_events: {len(runs)} vs {len(raw_runs)}")
    unclaimed = service.sql(
        "SELECT count() FROM usage_events WHERE (account_id, source, event_id) NOT IN "
        "(SELECT account_id, source, event_id FROM event_claims "
        "WHERE table_name = 'usage_events')"
    )[0][0]
    if unclaimed:
        problems.append(f"{unclaimed} usage rows without a claim")
    return problems


def statement_matches_raw(service: Service) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    answer = requests.get(
        f"{service.url}/api/v1/accounts/acme/statement",
        params={"month": month, "format": "json"},
        headers={"Authorization": "Bearer durability-admin"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    summary = answer.json()["summary"]
    raw_credits, raw_events = service.sql(
        "SELECT toString(sum(credits)), uniqExact(source, event_id) FROM usage_events "
        f"WHERE account_id = 'acme' AND toYYYYMM(event_time) = {month.replace('-', '')}"
    )[0]
    used = Decimal(str(summary["usage_debits"])) + Decimal(str(summary["other_usage_debits"]))
    assert used == Decimal(raw_credits)
    assert int(summary["events"]) == int(raw_events)


def test_twenty_random_sigkills_lose_and_double_nothing_anywhere(tmp_path: Path) -> None:
    rng = random.Random(20261206)
    # Every acknowledged id is read back through /api/v1/sql: lift its row limit.
    service = Service(tmp_path, env={"MH_SQL_MAX_ROWS": "5000000"})
    spool = service.data_dir / "meterhouse-spool"
    acked: set[str] = set()
    sent: set[str] = set()
    inside = 0
    assert meterhouse(service.data_dir, "migrate").returncode == 0
    created = meterhouse(service.data_dir, "accounts", "create", "acme")
    assert created.returncode == 0, created.stderr
    try:
        for kill in range(KILLS):
            service.start()
            streamer = threading.Thread(
                target=stream_until_killed, args=(service, acked, sent, f"k{kill}-")
            )
            streamer.start()
            time.sleep(rng.uniform(0.3, 2.5))
            service.kill()
            streamer.join(30)
            inside += killed_inside_a_batch(spool)
        service.start()
        service.wait_drained(timeout=120)
        assert len(acked) > KILLS * 200, "too little was acknowledged to test anything"
        check_exactly_once(service, acked, sent)
        claimed = service.sql(
            f"SELECT count() FROM (SELECT DISTINCT account_id, source, event_id FROM "
            f"event_claims WHERE table_name = 'usage_events' AND source = '{SOURCE}')"
        )[0][0]
        assert claimed >= len(expected_rows(acked)["usage_events"])
        assert rollup_mismatches(service) == []
        statement_matches_raw(service)
        assert inside >= 3, f"only {inside} of {KILLS} kills hit a batch being written"
    finally:
        service.stop()
