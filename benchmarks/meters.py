"""Meter query benchmark: OpenMeter-style queries over many free-form events.

    python benchmarks/meters.py [--events N] [--accounts A] [--queries Q] [--short]

1. A fresh embedded store in a temporary directory, every migration applied.
2. ``--events`` free-form events (default 10,000,000) are generated inside ClickHouse
   (``INSERT ... SELECT FROM numbers(N)``: no Python object per event) into meter_events:
   ``--accounts`` accounts, 50 subjects each, 30 days, data like
   ``{"minutes": 37, "gpu": "a100", "region": "eu"}``.
3. A SUM meter over ``$.minutes`` grouped by ``gpu`` is added through the registry, after
   the events: it counts them, as a meter added later does, and its hourly rollup is made
   (rollup_s: the backfill over every event).
4. ``--queries`` queries run through meterhouse/meters/query.py, the read API's own code,
   each for one account as a read key sees it: DAY windows in Europe/Berlin over the 30
   days, grouped by subject and gpu (the common customer view); then the same over every
   account (the admin's view), and HOUR windows for one subject. raw_p95_ms: the same
   account query with a range that is not whole hours, read from the events.
5. Exactness: each account's total is compared with the total the generator's formula
   gives; the script fails when one differs.

Prints one JSON line: events, accounts, insert_s, rollup_s, p50_ms, p95_ms, max_ms
(account queries, from the rollup), raw_p95_ms, all_accounts_ms, hour_subject_p95_ms,
rows (of an account query), exact.
``--short`` uses 200,000 events and 10 queries (CI runs it so the benchmark cannot rot;
no thresholds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterhouse.meters.definition import new_ulid, parse  # noqa: E402
from meterhouse.meters.query import MeterQuery, Scope, run_query  # noqa: E402
from meterhouse.meters.registry import Registry  # noqa: E402
from meterhouse.store.chdb_backend import ChdbStore  # noqa: E402
from meterhouse.store.migrations import migrate  # noqa: E402

END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # 2026-12-01 00:00 in Berlin
START = END - timedelta(days=30)
SUBJECTS = 50
# Event n: account n % A, subject (n // A) % 50, minutes n % 97, gpu by n % 3.
INSERT = """
INSERT INTO meter_events
    (account_id, subject, event_type, source, event_id, event_time, data)
SELECT
    concat('acct-', toString(number % {accounts:UInt64})),
    concat('cust-', toString(intDiv(number, {accounts:UInt64}) % 50)),
    'gpu.usage',
    'bench',
    concat('e', toString(number)),
    {start:DateTime64(3, 'UTC')} + toIntervalMillisecond(
        (number * 2654435761) % {span_ms:UInt64}),
    concat('{"minutes": ', toString(number % 97), ', "gpu": "',
           ['a100', 'h100', 'l4'][number % 3 + 1], '", "region": "eu"}')
FROM numbers({events:UInt64})
"""


def _expected_total(events: int, accounts: int, account: int) -> Decimal:
    """sum(n % 97) over n < events with n % accounts == account, by arithmetic."""
    total = 0
    count = (events - account + accounts - 1) // accounts if account < events else 0
    # n = account + k * accounts, k < count: n % 97 cycles with period 97 in k.
    cycle = [(account + k * accounts) % 97 for k in range(97)]
    full, rest = divmod(count, 97)
    total = full * sum(cycle) + sum(cycle[:rest])
    return Decimal(total)


def run(events: int, accounts: int, queries: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mh-meters-bench-") as directory:
        store = ChdbStore(f"chdb://{directory}", "bench")
        try:
            migrate(store)
            span_ms = int((END - START).total_seconds() * 1000)
            started = time.perf_counter()
            params = {
                "accounts": accounts,
                "start": START,
                "span_ms": span_ms,
                "events": events,
            }
            store.command(INSERT, params)
            insert_s = time.perf_counter() - started
            meter = parse(
                {
                    "slug": "gpu_minutes",
                    "eventType": "gpu.usage",
                    "aggregation": "SUM",
                    "valueProperty": "$.minutes",
                    "groupBy": {"gpu": "$.gpu"},
                }
            )
            began = time.perf_counter()
            meter = Registry(store, []).add(meter, meter_id=new_ulid(), actor="bench")
            rollup_s = time.perf_counter() - began
            daily = MeterQuery(
                start=START, end=END, window="DAY", zone="Europe/Berlin",
                group_by=("subject", "gpu"),
            )  # fmt: skip
            timings: list[float] = []
            rows = 0
            exact = True
            for index in range(queries):
                account = index % accounts
                scope = Scope(f"acct-{account}")
                began = time.perf_counter()
                found = run_query(store, meter, scope, daily, END)
                timings.append((time.perf_counter() - began) * 1000)
                rows = len(found)
                total = sum((Decimal(row.value) for row in found), Decimal(0))
                exact &= total == _expected_total(events, accounts, account)
            began = time.perf_counter()
            everyone = run_query(store, meter, Scope(), daily, END)
            all_ms = (time.perf_counter() - began) * 1000
            exact &= sum((Decimal(r.value) for r in everyone), Decimal(0)) == sum(
                (_expected_total(events, accounts, a) for a in range(accounts)), Decimal(0)
            )
            raw = MeterQuery(  # not whole hours: the events themselves, no rollup
                start=START, end=END - timedelta(milliseconds=1), window="DAY",
                zone="Europe/Berlin", group_by=("subject", "gpu"),
            )  # fmt: skip
            raw_timings = []
            for index in range(max(3, queries // 5)):
                account = index % accounts
                began = time.perf_counter()
                found = run_query(store, meter, Scope(f"acct-{account}"), raw, END)
                raw_timings.append((time.perf_counter() - began) * 1000)
                total = sum((Decimal(row.value) for row in found), Decimal(0))
                exact &= total == _expected_total(events, accounts, account)
            hourly = MeterQuery(
                start=START, end=END, window="HOUR", zone="Europe/Berlin", subjects=("cust-7",)
            )
            hour_timings = []
            for index in range(max(3, queries // 3)):
                began = time.perf_counter()
                run_query(store, meter, Scope(f"acct-{index % accounts}"), hourly, END)
                hour_timings.append((time.perf_counter() - began) * 1000)
        finally:
            store.close()
    ordered = sorted(timings)
    return {
        "events": events,
        "accounts": accounts,
        "insert_s": round(insert_s, 2),
        "rollup_s": round(rollup_s, 2),
        "raw_p95_ms": round(sorted(raw_timings)[-1], 1),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
        "max_ms": round(ordered[-1], 1),
        "all_accounts_ms": round(all_ms, 1),
        "hour_subject_p95_ms": round(sorted(hour_timings)[-1], 1),
        "rows": rows,
        "exact": exact,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--short", action="store_true", help="200,000 events, 10 queries")
    args = parser.parse_args()
    if args.short:
        args.events, args.queries = 200_000, 10
    figures = run(args.events, args.accounts, args.queries)
    print(json.dumps(figures))  # the benchmark's one line of output
    if not figures["exact"]:
        sys.exit("a meter total differs from the generator's: not exact")


if __name__ == "__main__":
    main()
