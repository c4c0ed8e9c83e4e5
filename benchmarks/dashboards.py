"""Dashboards benchmark: every ClickHouse target of every dashboard on a store grown to N events.

    python benchmarks/dashboards.py [--events N] [--repeat R] [--short]

1. A fresh embedded store in a temporary directory gets the demo the dashboards are proven
   on (tests/dashboards/engine.py ``load_demo``: accounts, jobs, grants, a month and a half
   of usage).
2. It is grown to ``--events`` usage events shaped like the demo's: copies of the demo's
   usage rows with new event ids, each copy moved back by its own number of seconds (under
   an hour) with its local date recomputed in the account's time zone, inserted as Arrow
   tables through ``Store.insert_arrow`` into ``usage_events`` (so every materialized view
   fills its rollup as on ingest). The job tables grow alongside to about a tenth of that
   (runs and logs copied under new run ids). The store must then hold every row generated,
   table by table, or the script fails.
3. For each dashboard and each variable state of tests/dashboards (defaults, narrowed,
   quoted), the variables are resolved as Grafana does and every target is expanded with
   meterhouse/dashboards/macros.py and run ``--repeat`` times after one unmeasured warm-up.

Prints JSON lines: one ``{"record": "panel", ...}`` per panel (p50/p95/max of its target
over states and repeats), one ``{"record": "dashboard", ...}`` per dashboard (the time of
the whole dashboard: variable queries plus every target, one after the other as the
embedded engine runs them), and last ``{"record": "store", ...}`` with the rows generated
and stored per table and the time growing took.

``--short`` grows to 60,000 events with one repeat (CI runs it so the benchmark cannot rot;
no thresholds). Full figures are in docs/dashboards.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the shared engine helpers live in tests/dashboards

from meterhouse.dashboards import build_boards  # noqa: E402
from meterhouse.dashboards.grafana import Board  # noqa: E402
from meterhouse.dashboards.macros import QueryContext, expand  # noqa: E402
from meterhouse.store.base import Store  # noqa: E402
from meterhouse.store.chdb_backend import ChdbStore  # noqa: E402
from meterhouse.store.migrations import migrate  # noqa: E402
from tests.dashboards.engine import (  # noqa: E402
    END,
    INTERVAL,
    START,
    STATES,
    State,
    clickhouse_targets,
    load_demo,
    resolve_variables,
)

SHORT_EVENTS = 60_000
# Rows per Arrow insert: a few copies of the demo at a time keeps memory bounded.
INSERT_ROWS = 200_000
JOB_SHARE = 10  # job run events at about a tenth of the usage events, as on the platform
# The copies, and the columns each copy changes. A copy moves back by its own offset.
GROWN: dict[str, tuple[str, ...]] = {
    "usage_events": ("event_id",),
    "job_run_events": ("run_id", "event_id"),
    "job_logs": ("run_id", "event_id"),
}
TIME_COLUMN = {"usage_events": "event_time", "job_run_events": "event_time", "job_logs": "log_time"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="usage events to grow to")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs of each target")
    parser.add_argument("--short", action="store_true", help=f"{SHORT_EVENTS} events, 1 repeat")
    parser.add_argument("--keep", type=Path, help="build the store in this directory (kept)")
    args = parser.parse_args()
    events = SHORT_EVENTS if args.short else args.events
    repeat = 1 if args.short else args.repeat
    directory = args.keep or Path(tempfile.mkdtemp(prefix="mh-dash-bench-"))
    store = ChdbStore(f"chdb://{directory}", "bench")
    try:
        migrate(store)
        # job_logs keeps 30 days from the real clock; the demo ends on a fixed date, so
        # merges would drop its older logs while the rows are counted.
        store.command("SYSTEM STOP TTL MERGES job_logs")
        started = time.perf_counter()
        load_demo(store, scale=1.0)
        generated = grow(store, events)
        grow_s = time.perf_counter() - started
        settle(store)
        stored = {table: count(store, table) for table in generated}
        if stored != generated:
            print(json.dumps({"error": "rows lost", "generated": generated, "stored": stored}))
            return 1
        for line in measure(store, build_boards(), repeat):
            print(json.dumps({"events": generated["usage_events"], **line}), flush=True)
        print(
            json.dumps(
                {
                    "record": "store",
                    "events": generated["usage_events"],
                    "generated": generated,
                    "stored": stored,
                    "grow_s": round(grow_s, 1),
                    # The machine's load: figures taken beside other work are slower.
                    "load_average": [round(x, 1) for x in os.getloadavg()],
                    "repeat": repeat,
                    "states": [state.name for state in STATES],
                }
            )
        )
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def settle(store: Store, limit_s: float = 600) -> None:
    """Wait for the background merges the growth started: they would time themselves."""
    deadline = time.monotonic() + limit_s
    while store.query("SELECT count() FROM system.merges").scalar() and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)


def count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}").scalar())


def grow(store: Store, events: int) -> dict[str, int]:
    """Copies of the demo's rows until usage_events holds about ``events``; rows per table."""
    base = {table: count(store, table) for table in GROWN}
    copies = max(0, math.ceil(events / base["usage_events"]) - 1)
    job_copies = max(0, math.ceil(events / JOB_SHARE / base["job_run_events"]) - 1)
    zones = dict(store.query("SELECT account_id, time_zone FROM accounts FINAL").rows)
    for table in GROWN:
        store.command(
            f"CREATE TABLE bench_base_{table} AS {table} ENGINE = MergeTree ORDER BY tuple()"
        )
        store.command(f"INSERT INTO bench_base_{table} SELECT * FROM {table}")
    for table, wanted in (
        ("usage_events", copies),
        ("job_run_events", job_copies),
        ("job_logs", job_copies),
    ):
        per_insert = max(1, INSERT_ROWS // max(base[table], 1))
        for first in range(1, wanted + 1, per_insert):
            last = min(first + per_insert, wanted + 1)
            for account, zone in zones.items():
                data = store.query_arrow(
                    _copies_sql(table, zone), {"a": account, "k0": first, "k1": last}
                )
                if data.num_rows:
                    store.insert_arrow(table, data, settings={"insert_deduplicate": 0})
        store.command(f"DROP TABLE bench_base_{table}")
        store.release_memory()
    return {
        "usage_events": base["usage_events"] * (1 + copies),
        "job_run_events": base["job_run_events"] * (1 + job_copies),
        "job_logs": base["job_logs"] * (1 + job_copies),
    }


def _copies_sql(table: str, zone: str) -> str:
    """Copies k0..k1-1 of one account's base rows: new ids, moved back by k * 613 s mod 1 h."""
    when = TIME_COLUMN[table]
    shift = "toIntervalSecond((k * 613) % 3600)"
    replaced = [f"concat({column}, '~', toString(k)) AS {column}" for column in GROWN[table]]
    replaced.append(f"{when} - {shift} AS {when}")
    if table == "usage_events":
        zone_literal = "'" + zone.replace("\\", "\\\\").replace("'", "\\'") + "'"
        replaced.append(f"toDate(toTimeZone({when} - {shift}, {zone_literal})) AS local_date")
    return (
        f"SELECT * EXCEPT k REPLACE ({', '.join(replaced)}) FROM ("
        f"SELECT *, arrayJoin(range({{k0:UInt32}}, {{k1:UInt32}})) AS k "
        f"FROM bench_base_{table} WHERE account_id = {{a:String}})"
    )


def measure(store: Store, boards: list[Board], repeat: int) -> Iterator[dict[str, Any]]:
    """Timings per panel and per dashboard, in milliseconds."""
    for board in boards:
        dashboard = json.loads((REPO / "grafana" / "dashboards" / board.spec.file_name).read_text())
        panels: dict[str, list[float]] = defaultdict(list)
        whole: list[float] = []
        for state in STATES:
            for attempt in range(repeat + 1):  # attempt 0 warms the caches, unmeasured
                total, timings = _run_once(store, board, dashboard, state)
                if attempt:
                    whole.append(total)
                    for title, ms in timings.items():
                        panels[title].append(ms)
        for title, samples in panels.items():
            yield {
                "record": "panel",
                "dashboard": board.spec.uid,
                "panel": title,
                **_stats(samples),
            }
        yield {"record": "dashboard", "dashboard": board.spec.uid, **_stats(whole)}


def _run_once(
    store: Store, board: Board, dashboard: dict[str, Any], state: State
) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    variables = resolve_variables(store, board, dashboard, state, check=False)
    timings = {"$variables": (time.perf_counter() - started) * 1000}
    ctx = QueryContext(START, END, INTERVAL, variables)
    for title, target in clickhouse_targets(dashboard):
        sql = expand(target["rawSql"], ctx)
        began = time.perf_counter()
        store.query(sql)
        timings[title] = timings.get(title, 0.0) + (time.perf_counter() - began) * 1000
    return (time.perf_counter() - started) * 1000, timings


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def rank(share: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    return {
        "p50_ms": round(rank(0.5), 1),
        "p95_ms": round(rank(0.95), 1),
        "max_ms": round(ordered[-1], 1),
        "samples": len(ordered),
    }


if __name__ == "__main__":
    sys.exit(main())
