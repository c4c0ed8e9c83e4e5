"""A real alerting stack on 127.0.0.1 for tests: meterhouse, Prometheus, Alertmanager, a webhook.

`meterhouse run` serves /metrics from its own embedded store; Prometheus (Debian package
``prometheus``) scrapes it every second and evaluates the project's own rule files, with
every ``for`` shortened so alerts fire within seconds; Alertmanager (``prometheus-
alertmanager``) routes with the project's own alertmanager.yml, whose webhook URLs are
pointed at a small HTTP server in the test process and whose e-mail configs are dropped.
Every process gets a free port and a temporary directory and is stopped on exit; every
wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.cli import RunningService, free_port, running_service

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
SHORT_FOR = "1s"


def binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        pytest.fail(
            f"`{name}` not found; it comes from the Debian package `{package}` "
            "(apt-get install -y prometheus prometheus-alertmanager prometheus-pushgateway)"
        )
    return path


def wait_until(check: Callable[[], Any], timeout: float, what: str, pause: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(pause)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@contextmanager
def process(argv: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# --------------------------------------------------------------------------- webhook


@dataclass
class Webhook:
    """Collects the JSON bodies Alertmanager posts."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [alert for body in self.received for alert in body.get("alerts", [])]


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    webhook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with webhook.lock:
                webhook.received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield webhook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- configs


def fast_rules(target: Path) -> list[Path]:
    """The project's rule files with every ``for`` set to SHORT_FOR; same exprs and labels."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = SHORT_FOR
        copy = target / path.name
        copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        written.append(copy)
    return written


def local_alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """alertmanager/alertmanager.yml with local webhooks, no e-mail and short waits."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        receiver.pop("email_configs", None)
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url

    def shorten(route: dict[str, Any]) -> None:
        route["group_wait"] = "1s"
        route["group_interval"] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


def prometheus_config(
    rule_dir: Path, service_port: int, alertmanager_port: int, metrics_token: str
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rule_dir / "*.yml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "meterhouse",
                "static_configs": [{"targets": [f"127.0.0.1:{service_port}"]}],
                # Per-account series (budgets, balances) need a token (docs/access.md).
                "authorization": {"type": "Bearer", "credentials": metrics_token},
            }
        ],
    }


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    service: RunningService
    prometheus_url: str
    alertmanager_url: str
    webhook: Webhook
    started: float  # time.monotonic() when the stack began starting

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query; returns the JSON answer whatever the status."""
        answer = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        )
        body: dict[str, Any] = answer.json()
        return body

    def sql(self, statement: str) -> dict[str, Any]:
        """Write through the service's admin SQL endpoint (the service owns the store)."""
        answer = requests.post(
            f"{self.service.url}/api/v1/sql",
            json={"sql": statement, "write": True},
            headers={"Authorization": f"Bearer {self.service.admin_token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@contextmanager
def alerting_stack(root: Path) -> Iterator[Stack]:
    started = time.monotonic()
    prometheus = binary("prometheus", "prometheus")
    alertmanager = binary("prometheus-alertmanager", "prometheus-alertmanager")
    data_dir = root / "meterhouse-data"
    data_dir.mkdir()
    with ExitStack() as stack:
        service = stack.enter_context(
            running_service(
                data_dir,
                log_path=root / "meterhouse.log",
                MH_LEDGER_METRICS_REFRESH_SECONDS="1",
            )
        )
        webhook = stack.enter_context(webhook_receiver())

        am_port = free_port()
        am_config = root / "alertmanager.yml"
        am_config.write_text(
            yaml.safe_dump(local_alertmanager_config(webhook.url)), encoding="utf-8"
        )
        stack.enter_context(
            process(
                [
                    alertmanager,
                    f"--config.file={am_config}",
                    f"--storage.path={root / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                root / "alertmanager.log",
            )
        )
        am_url = f"http://127.0.0.1:{am_port}"

        prom_port = free_port()
        rule_dir = root / "rules"
        fast_rules(rule_dir)
        prom_config = root / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(
                prometheus_config(
                    rule_dir, int(service.url.rsplit(":", 1)[1]), am_port, service.admin_token
                )
            ),
            encoding="utf-8",
        )
        stack.enter_context(
            process(
                [
                    prometheus,
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={root / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                root / "prometheus.log",
            )
        )
        prom_url = f"http://127.0.0.1:{prom_port}"

        for url, name in ((am_url, "alertmanager"), (prom_url, "prometheus")):
            wait_until(
                lambda url=url: requests.get(f"{url}/-/ready", timeout=2).status_code == 200,
                30,
                f"{name} to be ready (log: {root / (name + '.log')})",
            )
        result = Stack(service, prom_url, am_url, webhook, started)
        # The service applied the migrations; the account the end-to-end test budgets.
        result.sql(
            "INSERT INTO accounts (account_id, name, time_zone, plan) "
            "VALUES ('e2e', 'End to end', 'UTC', 'pro')"
        )
        wait_until(
            lambda: result.query('up{job="meterhouse"} == 1')["data"]["result"],
            30,
            "Prometheus to scrape meterhouse",
        )
        yield result
