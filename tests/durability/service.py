"""`meterhouse run` in a subprocess that a test can SIGKILL and start again on the same
data, and a client that records which events the service acknowledged."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import requests

from exporters.spool.inflight import read_inflight
from exporters.spool.log import Position, saved_checkpoint
from tests.support.cli import METERHOUSE, copy_migrated_data_dir, free_port

SOURCE = "durability.test"
REPO = Path(__file__).resolve().parents[2]


def model_call(event_id: str, account: str = "acme", tokens: int = 100) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": "com.meterhouse.model.call",
        "subject": account,
        "time": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "data": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "input_tokens": tokens,
            "output_tokens": 7,
        },
    }


def job_run(event_id: str, account: str = "acme") -> dict[str, Any]:
    """A finished run: one usage row and two job_run_events rows (start and end)."""
    now = datetime.now(UTC)
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": "com.meterhouse.job.run",
        "subject": account,
        "time": (now - timedelta(seconds=1)).isoformat(),
        "data": {
            "job_id": "nightly",
            "run_id": f"run-{event_id}",
            "kind": "scheduler",
            "status": "succeeded",
            "started_at": (now - timedelta(seconds=30)).isoformat(),
            "duration_seconds": "29.5",
        },
    }


def batch(prefix: str, size: int) -> list[dict[str, Any]]:
    """Mostly model calls, every tenth event a finished job run."""
    return [
        job_run(f"{prefix}-{n}") if n % 10 == 9 else model_call(f"{prefix}-{n}", tokens=n + 1)
        for n in range(size)
    ]


# The accounts the durability and hostile tests send usage for, created at first start.
ACCOUNTS = ("acme", "globex", "umbrella", "a")


@dataclass
class Service:
    """One data directory; ``start`` runs `meterhouse run` on it, ``kill`` SIGKILLs it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90, faults: str = "", **extra_env: str) -> Service:
        """``faults``: injected into the spool's drainer (tests/support/faulty_run.py)."""
        assert self.process is None or self.process.poll() is not None
        if not self.data_dir.exists() and "MH_CLICKHOUSE_URL" not in {**self.env, **extra_env}:
            copy_migrated_data_dir(self.data_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MH_")}
        env.update(
            {
                "MH_CLICKHOUSE_URL": f"chdb://{self.data_dir}",
                "MH_LOG_LEVEL": "warning",
                "MH_ADMIN_TOKEN": "durability-admin",
                **self.env,
                **extra_env,
            }
        )
        self.starts += 1
        log = open(self.root / f"service-{self.starts}.log", "wb")  # noqa: SIM115
        command = [METERHOUSE]
        if faults:
            command = [sys.executable, "-m", "tests.support.faulty_run", faults]
            env["PYTHONPATH"] = str(REPO)
        self.process = subprocess.Popen(
            [*command, "run", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"meterhouse run exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"meterhouse run did not start: {self.log_tail()}")
            time.sleep(0.1)
        if not self.token:
            self.token = self.admin("POST", "/api/v1/keys", {"source": SOURCE})["token"]
            self.create_accounts(*ACCOUNTS)
        return self

    def create_accounts(self, *account_ids: str) -> None:
        """Accounts (UTC, free: as unknown ones were priced) through the admin SQL."""
        values = ", ".join(f"('{a}', '{a}', 'UTC', 'free')" for a in account_ids)
        self.admin(
            "POST",
            "/api/v1/sql",
            {
                "sql": f"INSERT INTO accounts (account_id, name, time_zone, plan) VALUES {values}",
                "write": True,
            },
        )

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self) -> str:
        path = self.root / f"service-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        answer = requests.request(
            method,
            f"{self.url}{path}",
            json=payload,
            headers={"Authorization": "Bearer durability-admin"},
            timeout=60,
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    def post(self, events: list[dict[str, Any]], timeout: float = 30) -> requests.Response:
        return requests.post(
            f"{self.url}/api/v1/events",
            data=msgspec.json.encode(events),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/cloudevents-batch+json",
            },
            timeout=timeout,
        )

    def sql(self, query: str) -> list[list[Any]]:
        rows: list[list[Any]] = self.admin("POST", "/api/v1/sql", {"sql": query})["rows"]
        return rows

    def metric(self, name: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found.group(1)) if found else float("nan")

    def metric_sum(self, name: str) -> float:
        """The sum of every series of a metric (all label values)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def wait_drained(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.metric("meterhouse_spool_bytes") != 0:
            assert time.monotonic() < deadline, f"spool not drained: {self.log_tail()}"
            time.sleep(0.05)

    def counts(self, table: str) -> dict[str, int]:
        """event_id -> rows of this test's source in ``table``."""
        rows = self.sql(
            f"SELECT event_id, count() FROM {table} WHERE source = '{SOURCE}' GROUP BY event_id"
        )
        return {str(event_id): int(n) for event_id, n in rows}


def is_run(event_id: str) -> bool:
    """Whether ``batch`` made this event a finished job run (every tenth)."""
    return int(event_id.rsplit("-", 1)[1]) % 10 == 9


def usage_id(event_id: str) -> str:
    """The event_id of the event's usage row: a run is charged as ``run:<run_id>``."""
    return f"run:run-{event_id}" if is_run(event_id) else event_id


def event_of_usage(usage_row_id: str) -> str:
    """The id of the event a usage row charges (the inverse of ``usage_id``)."""
    return usage_row_id.removeprefix("run:run-")


def charged_events(service: Service) -> set[str]:
    """The ids of the events that have their usage row, as the client sent them."""
    return {event_of_usage(e) for e in service.counts("usage_events")}


def expected_rows(acked: set[str]) -> dict[str, set[str]]:
    """The keyed rows acknowledged events must have left, per table."""
    runs = {e for e in acked if is_run(e)}
    return {
        "usage_events": {usage_id(e) for e in acked},
        "job_run_events": runs | {f"{e}#started" for e in runs},
    }


def killed_inside_a_batch(spool: Path) -> bool:
    """The kill hit a drain batch between its first insert and its checkpoint: the batch
    the spool noted as being written ends past its checkpoint."""
    inflight = read_inflight(spool)
    checkpoint = saved_checkpoint(spool) or Position(0, 0)
    return inflight is not None and inflight.end > checkpoint


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))
