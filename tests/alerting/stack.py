"""A real alerting stack on 127.0.0.1, started from the shipped configuration files.

* `meterhouse run` on a store filled by `meterhouse demo`, with notification channels
  added by `meterhouse notify channels add` for two accounts;
* Prometheus (Debian package ``prometheus``) with prometheus/prometheus.yml and
  prometheus/rules/ as shipped: only the scrape and Alertmanager target addresses are
  replaced by the local ones;
* Alertmanager (``prometheus-alertmanager``) with alertmanager/alertmanager.yml as shipped,
  filled by `meterhouse notify alertmanager-config` from MH_* addresses, ports and secrets;
* the people at the other end: a webhook receiver and an SMTP server (aiosmtpd).

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
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.cli import RunningService, free_port, meterhouse, running_service

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
WEBHOOK_TOKEN = "alerts-token-for-tests"
SECRET_KEY = "a-notify-secret-key-for-tests"
OPERATOR_EMAIL = "oncall@platform.example"


def binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        pytest.fail(
            f"`{name}` not found; it comes from the Debian package `{package}` "
            "(apt-get install -y prometheus prometheus-alertmanager prometheus-pushgateway)"
        )
    return path


def wait_until(check: Callable[[], Any], timeout: float, what: str, pause: float = 0.5) -> Any:
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


# --------------------------------------------------------------------------- receivers


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    """Receivers of the channels: records every POST; a path in ``failures`` answers 500
    to the first that many attempts of each delivery (by its Meterhouse-Delivery-Id)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            key = (self.path, self.headers.get("Meterhouse-Delivery-Id", ""))
            with hooks.lock:
                hooks.received.append(Received(self.path, dict(self.headers.items()), body))
                hooks.attempts[key] = hooks.attempts.get(key, 0) + 1
                failing = hooks.attempts[key] <= hooks.failures.get(self.path, 0)
            self.send_response(500 if failing else 200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="webhooks", daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Mailbox:
    """What the SMTP server received: (envelope recipients, parsed message)."""

    port: int = 0
    mails: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        del server, session
        content = envelope.original_content or b""
        with self.lock:
            mail = message_from_bytes(content, _class=EmailMessage, policy=policy.default)
            self.mails.append(([str(r) for r in envelope.rcpt_tos], mail))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [mail for rcpts, mail in self.mails if address in rcpts]


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


# --------------------------------------------------------------------------- configs


def metrics_token_file(root: Path, token: str) -> Path:
    path = root / "metrics_token"
    path.write_text(token, encoding="utf-8")
    path.chmod(0o600)
    return path


def local_prometheus_config(addresses: dict[str, str], secrets: dict[str, Path]) -> str:
    """prometheus/prometheus.yml as shipped, with only the target addresses and the paths
    of secret files replaced."""
    text = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    for shipped, local in addresses.items():
        assert f'"{shipped}"' in text, f"{shipped} is no longer a target of prometheus.yml"
        text = text.replace(f'"{shipped}"', f'"{local}"')
    for shipped_path, local_path in secrets.items():
        assert shipped_path in text, f"{shipped_path} is no longer read by prometheus.yml"
        text = text.replace(shipped_path, str(local_path))
    return text


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    service: RunningService
    prometheus_url: str
    alertmanager_url: str
    hooks: WebhookReceiver
    mailbox: Mailbox
    channels: dict[str, tuple[str, str]]  # name -> (channel id, signing secret)
    env: dict[str, str]
    root: Path
    started: float  # time.monotonic() when the stack began starting

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query; returns the JSON answer whatever the status."""
        answer = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        )
        body: dict[str, Any] = answer.json()
        return body

    def sql(self, statement: str, *, write: bool = True) -> dict[str, Any]:
        """Through the service's admin SQL endpoint (the service owns the store)."""
        answer = requests.post(
            f"{self.service.url}/api/v1/sql",
            json={"sql": statement, "write": write},
            headers={"Authorization": f"Bearer {self.service.admin_token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return meterhouse(self.service.data_dir, *args, **self.env)


# Who hears what: two accounts of the demo, each with its own channels.
CHANNELS = {
    "acme-webhook": ("acme", "webhook", "/acme", "info"),
    "acme-flaky": ("acme", "webhook", "/acme-flaky", "warning"),
    "acme-email": ("acme", "email", "alerts@acme.example", "info"),
    "globex-webhook": ("globex", "webhook", "/globex", "info"),
    "globex-email": ("globex", "email", "ops@globex.example", "info"),
    "operators-webhook": ("", "webhook", "/operators", "warning"),
}


def add_channels(data_dir: Path, hooks: WebhookReceiver, env: dict[str, str]) -> dict[str, Any]:
    """Through the real CLI, before the service holds the store."""
    made = {}
    for name, (account, kind, target, floor) in CHANNELS.items():
        url = hooks.url + target if kind == "webhook" else target
        done = meterhouse(
            data_dir,
            "notify",
            "channels",
            "add",
            *(("--account", account) if account else ("--operators",)),
            "--type",
            kind,
            "--target",
            url,
            "--min-severity",
            floor,
            "--description",
            name,
            **env,
        )
        assert done.returncode == 0, done.stderr
        channel_id = done.stdout.split()[1]
        lines = [line for line in done.stdout.splitlines() if line.startswith("signing secret")]
        secret = lines[0].split()[-1] if kind == "webhook" else ""
        made[name] = (channel_id, secret)
    return made


@contextmanager
def alerting_stack(root: Path) -> Iterator[Stack]:
    started = time.monotonic()
    prometheus = binary("prometheus", "prometheus")
    alertmanager = binary("prometheus-alertmanager", "prometheus-alertmanager")
    data_dir = root / "meterhouse-data"
    data_dir.mkdir()
    with ExitStack() as stack:
        hooks = stack.enter_context(webhook_receiver())
        hooks.failures["/acme-flaky"] = 2  # every delivery to it fails twice first
        mailbox = stack.enter_context(smtp_server())
        am_port, prom_port = free_port(), free_port()
        am_url = f"http://127.0.0.1:{am_port}"
        env = {
            "MH_NOTIFY_SECRET_KEY": SECRET_KEY,
            "MH_ALERTS_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "MH_SMTP_HOST": "127.0.0.1",
            "MH_SMTP_PORT": str(mailbox.port),
            "MH_SMTP_FROM": "meterhouse@platform.example",
            "MH_SMTP_STARTTLS": "false",
            "MH_OPERATOR_EMAIL": OPERATOR_EMAIL,
            "MH_ALERTMANAGER_URL": am_url,
        }
        demo = meterhouse(data_dir, "demo", "--days", "2", timeout=300)
        assert demo.returncode == 0, demo.stderr[-2000:]
        channels = add_channels(data_dir, hooks, env)

        service = stack.enter_context(
            running_service(
                data_dir,
                log_path=root / "meterhouse.log",
                MH_LEDGER_METRICS_REFRESH_SECONDS="1",
                MH_NOTIFY_RETRY_BASE_SECONDS="1",
                MH_ALERTS_PUSH_INTERVAL_SECONDS="5",
                **env,
            )
        )
        env["MH_ALERTS_RECEIVER_URL"] = f"{service.url}/api/v1/alerts/webhook"

        am_config = root / "alertmanager.yml"
        rendered = meterhouse(
            data_dir, "notify", "alertmanager-config", "-o", str(am_config), **env
        )
        assert rendered.returncode == 0, rendered.stderr
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

        prom_dir = root / "prometheus"
        prom_dir.mkdir()
        (prom_dir / "rules").symlink_to(RULES_DIR)
        (prom_dir / "prometheus.yml").write_text(
            local_prometheus_config(
                {
                    "meterhouse:8080": service.url.removeprefix("http://"),
                    "alertmanager:9093": f"127.0.0.1:{am_port}",
                    "localhost:9090": f"127.0.0.1:{prom_port}",
                },
                # The scrape's metrics token (docs/access.md): the admin token serves too.
                {"/run/secrets/metrics_token": metrics_token_file(root, service.admin_token)},
            ),
            encoding="utf-8",
        )
        stack.enter_context(
            process(
                [
                    prometheus,
                    f"--config.file={prom_dir / 'prometheus.yml'}",
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
        result = Stack(service, prom_url, am_url, hooks, mailbox, channels, env, root, started)
        # The service applied the migrations; an account without data for the PromQL tests.
        result.sql(
            "INSERT INTO accounts (account_id, name, time_zone, plan) "
            "VALUES ('e2e', 'End to end', 'UTC', 'pro')"
        )
        wait_until(
            lambda: result.query('up{job="meterhouse"} == 1')["data"]["result"],
            40,
            "Prometheus to scrape meterhouse",
        )
        yield result
