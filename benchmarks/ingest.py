"""Ingest benchmark: `meterhouse run` end to end, against the engine's own insert speed.

    python benchmarks/ingest.py [--events N] [--connections C] [--short]

1. Starts `meterhouse run` (durability on: the spool) on a fresh embedded store in a
   temporary directory, and makes an ingest key through its admin API.
2. Load generator processes (``--connections``, one keep-alive HTTP connection each)
   build realistic CloudEvents batches of ``--batch`` events (model calls mostly, some job
   runs and logs, as meterhouse/demo/generator.py makes them) *before* the clock starts,
   then send them as fast as the service answers.
3. Meanwhile a sampler takes one acknowledged model call about every 50 ms and polls
   ``/api/v1/sql`` until the event is visible in usage_events: ack -> visible latency.
4. After the last event is visible the service is stopped, and in a separate process the
   engine's ceiling is measured: the same kind of usage_events rows inserted straight from
   Python into the same table of a fresh store (schema and materialized views included),
   as one Arrow insert through the store seam (``Store.insert_arrow``, the writer's own
   path), once into a bare copy of the table and once into usage_events with its view;
   each checks that the table stored every row it timed.

Prints one JSON line: events, events_per_s (all events sent, acknowledged AND visible,
divided by the time from the first request to the last event visible), ack_events_per_s,
ceiling_rows_per_s (with the table's view), ceiling_bare_rows_per_s (the table alone),
ceiling_rows_stored, ratio (events_per_s / ceiling_rows_per_s), p99_ack_ms, p99_visible_ms,
peak_rss_mb (the service's VmHWM), peak_anon_mb (its largest RssAnon, sampled), idle_rss_mb
(its RSS before the first event: the embedded engine's library alone is ~400 MB),
load_average (of the machine at the start).

``--short`` sends 20,000 events (CI runs it so the benchmark cannot rot; no thresholds).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

SOURCE = "bench.platform"
TENANTS = (
    ("acme", ("data", "ml"), ("churn-model", "support-bot"), ("alice", "bob", "chen")),
    ("globex", ("platform", "growth"), ("etl-core", "search"), ("dana", "eve")),
    ("initech", ("data",), ("reporting",), ("farid", "grace")),
    ("umbrella", ("ml", "data"), ("rag-docs", "search"), ("alice", "eve")),
    ("tinyco", ("data",), ("etl-core",), ("bob",)),
)
# (provider, model, weight, typical input, typical output), as the demo generator's.
MODELS = (
    ("openai", "gpt-4o", 30, 1800, 450),
    ("openai", "gpt-4o-mini", 40, 900, 300),
    ("anthropic", "claude-sonnet-4-20250514", 20, 2500, 700),
    ("google", "gemini-2.5-flash", 15, 1200, 350),
    ("anthropic", "claude-3-5-haiku-latest", 10, 700, 200),
    ("", "acme-internal-7b", 2, 500, 150),
)
JOB_KINDS = ("scheduler", "asset", "webhook", "notification")


# -- events -------------------------------------------------------------------------------


def make_batch(rng: random.Random, worker: int, start: int, size: int) -> bytes:
    """``size`` CloudEvents: ~85 % model calls, ~8 % finished job runs, ~7 % job logs."""
    now = datetime.now(UTC)
    weights = [m[2] for m in MODELS]
    events: list[dict[str, Any]] = []
    for number in range(start, start + size):
        account, teams, projects, users = rng.choice(TENANTS)
        at = now - timedelta(seconds=rng.uniform(0, 3600))
        owner = {"team_id": rng.choice(teams), "project_id": rng.choice(projects)}
        pick = rng.random()
        if pick < 0.85:
            provider, model, _, typical_in, typical_out = rng.choices(MODELS, weights)[0]
            tokens_in = max(1, int(rng.lognormvariate(0, 0.6) * typical_in))
            kind, data = (
                "com.meterhouse.model.call",
                {
                    **owner,
                    "user_id": rng.choice(users),
                    "model": model,
                    "provider": provider,
                    "input_tokens": tokens_in,
                    "output_tokens": max(1, int(rng.lognormvariate(0, 0.5) * typical_out)),
                    "cache_read_tokens": int(tokens_in * rng.choice((0, 0, 0.3, 0.6))),
                },
            )
        elif pick < 0.93:
            seconds = max(0.5, rng.lognormvariate(0, 0.35) * 120)
            kind, data = (
                "com.meterhouse.job.run",
                {
                    **owner,
                    "job_id": f"{account}-job-{rng.randrange(7)}",
                    "run_id": f"run_{worker}_{number}",
                    "kind": rng.choice(JOB_KINDS),
                    "status": "succeeded" if rng.random() < 0.93 else "failed",
                    "started_at": (at - timedelta(seconds=seconds)).isoformat(),
                    "duration_seconds": f"{seconds:.3f}",
                },
            )
        else:
            kind, data = (
                "com.meterhouse.job.log",
                {
                    **owner,
                    "job_id": f"{account}-job-{rng.randrange(7)}",
                    "run_id": f"run_{worker}_{number - 1}",
                    "kind": rng.choice(JOB_KINDS),
                    "level": "info",
                    "message": f"step {rng.randrange(20)} finished in {rng.uniform(0, 9):.2f}s",
                },
            )
        events.append(
            {
                "specversion": "1.0",
                "id": f"evt-{worker}-{number}",
                "source": SOURCE,
                "type": kind,
                "subject": account,
                "time": at.isoformat(),
                "data": data,
            }
        )
    return msgspec.json.encode(events)


KEYED_ROWS = {  # rows each event type writes to keyed tables (a finished run: 3)
    "com.meterhouse.model.call": 1,
    "com.meterhouse.job.run": 3,
    "com.meterhouse.job.log": 1,
}


def model_call_ids(body: bytes) -> list[str]:
    return [e["id"] for e in msgspec.json.decode(body) if e["type"] == "com.meterhouse.model.call"]


def keyed_rows(body: bytes) -> int:
    return sum(KEYED_ROWS[e["type"]] for e in msgspec.json.decode(body))


# -- the load generator (separate processes) ------------------------------------------------


def sender(
    worker: int,
    port: int,
    token: str,
    events: int,
    batch: int,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    rng = random.Random(worker)
    bodies = [
        make_batch(rng, worker, start, min(batch, events - start))
        for start in range(0, events, batch)
    ]
    samples = [model_call_ids(body)[:1] for body in bodies]
    keys = sum(keyed_rows(body) for body in bodies)
    ready.put(worker)
    go.wait()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    latencies: list[float] = []
    for body, sample in zip(bodies, samples, strict=True):
        while True:
            sent = time.time()
            connection.request("POST", "/api/v1/events", body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            acked = time.time()
            if answer.status == 204:
                break
            if answer.status != 503:
                results.put(("error", worker, answer.status))
                return
            time.sleep(float(answer.getheader("Retry-After") or 1))
        latencies.append(acked - sent)
        results.put(("ack", sample[0] if sample else "", acked))
    results.put(("done", worker, latencies, keys))


# -- the service ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def meterhouse_command() -> list[str]:
    found = shutil.which("meterhouse") or str(Path(sys.executable).parent / "meterhouse")
    return [found] if Path(found).exists() else [sys.executable, "-m", "meterhouse"]


@contextmanager
def service(
    data_dir: Path, port: int, log_path: Path, settings: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
    env.update(
        {
            "MH_CLICKHOUSE_URL": f"chdb://{data_dir}",
            "MH_LOG_LEVEL": "warning",
            "MH_INGEST_MAX_BATCH_EVENTS": "10000",
            **settings,
        }
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*meterhouse_command(), "run", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"meterhouse run did not start; see {log_path}")
                time.sleep(0.2)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def call(port: int, method: str, path: str, token: str, payload: Any) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(
        method,
        path,
        body=json.dumps(payload),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    body = answer.read()
    if answer.status >= 300:
        raise RuntimeError(f"{method} {path}: {answer.status} {body[:300]!r}")
    return json.loads(body)


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: the peak resident set; VmRSS: the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemoryPeak:
    """The service's peak anonymous memory (RssAnon), sampled every 50 ms: the engine's
    library pages are file-backed and shared, heap and buffers are anonymous."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_anon_mb = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.peak_anon_mb = max(self.peak_anon_mb, rss_mb(self.pid, "RssAnon"))
            except OSError:
                return


class Visibility:
    """Ack -> visible latencies of sampled events, by polling the SQL endpoint."""

    def __init__(self, port: int, admin: str) -> None:
        self.port, self.admin = port, admin
        self.pending: list[tuple[str, float]] = []
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.last_sample = 0.0

    def offer(self, event_id: str, acked: float) -> None:
        if event_id and acked - self.last_sample >= 0.05:
            self.last_sample = acked
            with self.lock:
                self.pending.append((event_id, acked))

    def visible(self, ids: list[str]) -> set[str]:
        quoted = ", ".join("'" + i.replace("'", "") + "'" for i in ids)
        rows = call(
            self.port,
            "POST",
            "/api/v1/sql",
            self.admin,
            {"sql": f"SELECT event_id FROM usage_events WHERE event_id IN ({quoted})"},
        )["rows"]
        return {row[0] for row in rows}

    def run(self) -> None:
        while not self.stop.is_set() or self.pending:
            with self.lock:
                waiting = list(self.pending)
            if waiting:
                seen = self.visible([i for i, _ in waiting])
                now = time.time()
                with self.lock:
                    for event_id, acked in waiting:
                        if event_id in seen:
                            self.latencies.append(now - acked)
                    self.pending = [p for p in self.pending if p[0] not in seen]
            if self.stop.is_set() and waiting and time.time() > self.give_up:
                return
            time.sleep(0.05)

    give_up = float("inf")


KEYED_TABLES = ("usage_events", "job_run_events", "job_logs")


def count(port: int, admin: str) -> int:
    """Rows stored in the keyed tables (the store is fresh: they are all the benchmark's);
    count() of a whole table is answered from part metadata, so polling it is cheap."""
    total = " + ".join(f"(SELECT count() FROM {table})" for table in KEYED_TABLES)
    rows = call(port, "POST", "/api/v1/sql", admin, {"sql": f"SELECT {total}"})["rows"]
    return int(rows[0][0])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_service_benchmark(
    root: Path,
    events: int,
    connections: int,
    batch: int,
    profile: str = "",
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    port = free_port()
    data_dir = root / "data"
    with service(data_dir, port, root / "service.log", settings or {}) as process:
        owner = json.loads((data_dir / "meterhouse-owner.json").read_text())
        admin = owner["admin_token"]
        token = call(port, "POST", "/api/v1/keys", admin, {"source": SOURCE})["token"]
        # Ingest refuses usage of accounts nobody created; UTC and free, as the ceiling prices.
        accounts = ", ".join(f"('{t[0]}', '{t[0]}', 'UTC', 'free')" for t in TENANTS)
        insert = f"INSERT INTO accounts (account_id, name, time_zone, plan) VALUES {accounts}"
        call(port, "POST", "/api/v1/sql", admin, {"sql": insert, "write": True})
        idle_rss = rss_mb(process.pid, "VmRSS")
        context = mp.get_context("fork")
        ready_q, results = context.Queue(), context.Queue()
        go = context.Event()
        share = [
            events // connections + (1 if i < events % connections else 0)
            for i in range(connections)
        ]
        workers = [
            context.Process(
                target=sender, args=(i, port, token, share[i], batch, ready_q, go, results)
            )
            for i in range(connections)
        ]
        for worker in workers:
            worker.start()
        for _ in workers:
            ready_q.get(timeout=600)
        sampler = Visibility(port, admin)
        sampler_thread = threading.Thread(target=sampler.run, daemon=True)
        sampler_thread.start()
        memory = MemoryPeak(process.pid)
        memory_thread = threading.Thread(target=memory.run, daemon=True)
        memory_thread.start()
        profiler = None
        if profile:  # py-spy on the service while events flow (pip install py-spy)
            profiler = subprocess.Popen(
                [
                    *("py-spy", "record", "-p", str(process.pid), "-r", "100", "-f", "raw"),
                    *("-o", profile, "--nonblocking", "--threads", "--idle"),
                ]
            )
        started = time.time()
        go.set()
        acks: list[float] = []
        expected_keys = 0
        done = 0
        last_ack = started
        while done < connections:
            kind, *rest = results.get(timeout=600)
            if kind == "ack":
                sampler.offer(rest[0], rest[1])
                last_ack = max(last_ack, rest[1])
            elif kind == "done":
                done += 1
                acks.extend(rest[1])
                expected_keys += rest[2]
            else:
                raise RuntimeError(f"sender {rest[0]} got HTTP {rest[1]}")
        for worker in workers:
            worker.join(30)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        deadline = time.time() + 600
        while count(port, admin) < expected_keys and time.time() < deadline:
            time.sleep(0.05)
        all_visible = time.time()
        sampler.give_up = time.time() + 30
        sampler.stop.set()
        sampler_thread.join(60)
        rss = rss_mb(process.pid)
        memory.stop.set()
        memory_thread.join(5)
    elapsed = all_visible - started
    return {
        "events": events,
        "events_per_s": round(events / elapsed),
        "ack_events_per_s": round(events / (last_ack - started)),
        "p99_ack_ms": round(percentile(acks, 0.99) * 1000, 1),
        "p99_visible_ms": round(percentile(sampler.latencies, 0.99) * 1000, 1),
        "visible_samples": len(sampler.latencies),
        "peak_rss_mb": round(rss, 1),
        "peak_anon_mb": round(memory.peak_anon_mb, 1),
        "idle_rss_mb": round(idle_rss, 1),
    }


# -- the engine's ceiling (separate process: chdb allows one data directory per process) ---

CEILING_SCRIPT = r"""
import json, random, sys, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, sys.argv[3])
from benchmarks.ingest import make_batch
from collectors import cloudevents
from meterhouse.processing.columns import ColumnBuilder
from collectors.validate import Limits
from datetime import UTC, datetime
from meterhouse.access.keys import ApiKey
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.rating.rater import Rater
from meterhouse.settings import Settings
from meterhouse.store import open_store
from meterhouse.store.migrations import migrate

root, rows_wanted = Path(sys.argv[1]), int(sys.argv[2])
store = open_store(Settings(clickhouse_url=f"chdb://{root / 'ceiling'}"))
migrate(store)
key = ApiKey(key_id="0" * 16, purpose="ingest", source="bench.platform", account_id="",
             description="", created_at=datetime.now(UTC), expires_at=None, revoked_at=None)
builder = ColumnBuilder(AccountDirectory(store), Rater.default())
rng = random.Random(99)
parts, have = [], 0
while have < rows_wanted:
    body = make_batch(rng, 99, have * 2, 10_000)
    events = cloudevents.decode_events(body, "application/cloudevents-batch+json", key,
                                       datetime.now(UTC), Limits(max_batch_events=10_000)).events
    table = builder.build(events).tables["usage_events"]
    parts.append(table)
    have += table.num_rows
table = pa.concat_tables(parts).slice(0, rows_wanted).combine_chunks()
# The bare table: usage_events' columns, engine and order, without the view behind it.
store.command("CREATE TABLE usage_bare AS usage_events")
result = {"rows": table.num_rows}
for name, target in (("bare", "usage_bare"), ("with_views", "usage_events")):
    started = time.perf_counter()
    store.insert_arrow(target, table, settings={"optimize_on_insert": 0})
    elapsed = time.perf_counter() - started
    stored = int(store.query(f"SELECT count() FROM {target}").scalar())
    if stored != table.num_rows:  # a ceiling that did not store what it timed is no ceiling
        raise SystemExit(f"ceiling {name}: timed {table.num_rows} rows, stored {stored}")
    result[f"{name}_rows_per_s"] = table.num_rows / elapsed
    result[f"{name}_stored"] = stored
print(json.dumps(result))
"""


def run_ceiling(root: Path, rows: int) -> dict[str, Any]:
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", CEILING_SCRIPT, str(root), str(rows), repo],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=repo,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ceiling measurement failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to send")
    parser.add_argument("--connections", type=int, default=4, help="concurrent senders")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--short", action="store_true", help="20,000 events: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", default="", help="py-spy raw profile of the service here")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="MH_NAME=VALUE",
        help="a setting of the service, e.g. MH_SPOOL_PACE_BYTES=0 (repeatable)",
    )
    args = parser.parse_args(argv)
    events = 20_000 if args.short else args.events
    load = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="mh-bench-"))
    try:
        measured = run_service_benchmark(root, events, args.connections, args.batch, args.profile)
        ceiling = run_ceiling(root, min(events, 500_000))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "events": measured["events"],
        "events_per_s": measured["events_per_s"],
        "ceiling_rows_per_s": round(ceiling["with_views_rows_per_s"]),
        "ceiling_bare_rows_per_s": round(ceiling["bare_rows_per_s"]),
        "ceiling_rows_stored": ceiling["with_views_stored"],
        "ratio": round(measured["events_per_s"] / ceiling["with_views_rows_per_s"], 3),
        "p99_ack_ms": measured["p99_ack_ms"],
        "p99_visible_ms": measured["p99_visible_ms"],
        "peak_rss_mb": measured["peak_rss_mb"],
        "peak_anon_mb": measured["peak_anon_mb"],
        "idle_rss_mb": measured["idle_rss_mb"],
        "ack_events_per_s": measured["ack_events_per_s"],
        "visible_samples": measured["visible_samples"],
        "load_average": round(load, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
