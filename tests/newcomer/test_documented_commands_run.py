"""Issue 15, "Done when": every command README.md and docs/*.md show runs, in order, on a
fresh store, first with `meterhouse run` down and then with it up, and exits 0 with the
documented output shape (JSON that parses for --format json, CSV with a header for csv,
the HTML file for -o, a table or a sentence otherwise).

The fresh store gets what the README's first step gives a newcomer (`meterhouse demo`);
then the documented lines run as shown. What a line cannot say literally is filled in as
a reader would: the ids the docs show as examples (a key, a channel, a run, a spool
record) become the ones the commands before it made, the placeholders ACCOUNT, A, JOB and
RUN_ID real ones, and paths outside this test's directory (/etc/...) a file in it. One
refusal is documented: `users sync-clickhouse` (not --dry-run) needs a ClickHouse server
and says so on the embedded store, down or up.
External services are the local doubles other tests use, named by MH_* variables only:
a Stripe-shaped server (tests/billing/stripe_fake.py) and an SMTP server (aiosmtpd).

After them, the commands the README names without showing a use (`migrate`, `prices sync`,
`reprice`) and tenant changes, which must work through the service as well.

Commands run in this process (click's CliRunner); `meterhouse run` is the real service
in its own process. With it up, every command goes through its store endpoint.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from click.testing import CliRunner, Result

from exporters.spool import codec
from exporters.spool.quarantine import DEAD_LETTER, KeptFolder
from meterhouse.cli import cli
from tests.access.fake_grafana import fake_grafana
from tests.billing.stripe_fake import FAKE_API_KEY, make_fake, seed_catalog
from tests.dashboards.test_custom import doc_examples
from tests.newcomer.test_documented_commands import documented
from tests.support.cli import METERHOUSE, RunningService, cli_env, free_port, running_service

if TYPE_CHECKING:
    from billing_sync.local_stripe import LocalStripe

pytestmark = pytest.mark.timeout(900)

# Example ids the docs show, and what each stands for.
DOC_KEY_ID = "3f9c2a7d1b0e4c55"
DOC_CHANNEL_ID = "ch_3f2a9c1b7d0e"
DOC_RUN_ID = "run_c9395e078b5a6368"
DOC_SPOOL_RECORD = "00000000000000000003-000000001024"
# On the embedded store these refuse by design, saying what to do: per-tenant ClickHouse
# users need a ClickHouse server (docs/access.md). `--dry-run` prints the plan.
NEEDS_A_SERVER = ["users", "sync-clickhouse"]
SERVER_REFUSAL = "need a ClickHouse server"
# The Grafana docs/dashboards.md talks to; here the checking local Grafana API server.
DOC_GRAFANA_URL = "http://127.0.0.1:3000"
DOC_GRAFANA_TOKEN = "$GRAFANA_TOKEN"
GRAFANA_TOKEN = "glsa_documented_commands_1"
# The file docs/dashboards.md's commands name, holding its first example.
DOC_CUSTOM_FILE = "data-team.yaml"


@dataclass
class Pass:
    """One run of the documented commands: its environment and what it made so far."""

    name: str
    env: dict[str, str]
    cwd: Path
    service: RunningService | None = None
    key_ids: list[str] = field(default_factory=list)
    channel_ids: list[str] = field(default_factory=list)
    run_id: str = ""
    job_id: str = ""

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def stripe() -> Iterator[LocalStripe]:
    """A Stripe-shaped server with the plans and a customer paying for acme."""
    fake = make_fake()
    fake.start()
    prices = seed_catalog(fake)
    customer = fake.create_customer(email="billing@acme.example", name="Acme", account="acme")
    fake.create_subscription(customer["id"], [(prices["pro"], 1)])
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def smtp() -> Iterator[int]:
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def grafana() -> Iterator[str]:
    with fake_grafana(GRAFANA_TOKEN) as (url, _):
        yield url


@pytest.fixture
def doubles(stripe: LocalStripe, smtp: int, grafana: str) -> dict[str, str]:
    """MH_* settings that point external services at the local doubles, and the ones
    docs/alerts.md asks for before its commands (GRAFANA_URL is the double's address,
    for the commands that name Grafana's)."""
    return {
        "GRAFANA_URL": grafana,
        "MH_LOG_LEVEL": "warning",
        "MH_STRIPE_API_KEY": FAKE_API_KEY,
        "MH_STRIPE_API_BASE": stripe.url,
        "MH_SMTP_HOST": "127.0.0.1",
        "MH_SMTP_PORT": str(smtp),
        "MH_SMTP_FROM": "alerts@meterhouse.example",
        "MH_SMTP_STARTTLS": "false",
        "MH_NOTIFY_SECRET_KEY": secrets.token_urlsafe(24),
        "MH_ALERTS_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
        "MH_OPERATOR_EMAIL": "ops@meterhouse.example",
    }


def keep_dead_letter(spool_dir: Path) -> None:
    """The record docs/durability.md inspects and replays: one the store refused."""
    rows = pa.table({"source": ["docs"], "event_id": ["dl-1"], "note": ["kept"]})
    payload = codec.encode({"mh_docs_later": rows}, 1, 0)
    reason = "ClickHouse error 60 (UNKNOWN_TABLE): table mh_docs_later does not exist"
    KeptFolder(spool_dir, DEAD_LETTER).keep(3, 1024, payload, reason)


def substitute(words: list[str], state: Pass) -> list[str]:
    """The documented words with example ids and placeholders made real."""
    out: list[str] = []
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        real = {
            DOC_KEY_ID: state.key_ids[-1] if state.key_ids else word,
            DOC_CHANNEL_ID: state.channel_ids[-1] if state.channel_ids else word,
            DOC_RUN_ID: state.run_id,
            "RUN_ID": state.run_id,
            DOC_GRAFANA_URL: state.env["GRAFANA_URL"],
            DOC_GRAFANA_TOKEN: GRAFANA_TOKEN,
        }.get(word, word)
        if word == "JOB" and before == "--job":
            real = state.job_id
        elif word in ("ACCOUNT", "A") and before == "--account":
            real = "acme"
        elif word.startswith("/etc/"):
            real = str(state.cwd / Path(word).name)
        out.append(real)
    if out[1:3] == ["dashboards", "build"] and "--check" not in out:
        out += ["--out", str(state.cwd / "dashboards")]  # not the source tree
    return out


def check_shape(words: list[str], result: Result, state: Pass) -> None:
    """The output the docs promise for these words."""
    shown = " ".join(words)
    stdout = result.stdout
    if "--format" in words:
        fmt = words[words.index("--format") + 1]
        if fmt == "json":
            json.loads(stdout)
        elif fmt == "csv":
            assert next(csv.reader(io.StringIO(stdout))), shown
    if "-o" in words:
        written = state.cwd / words[words.index("-o") + 1]
        text = written.read_text()
        assert text.strip(), shown
        if "html" in words:
            assert "<html" in text.lower(), shown
        return
    if words[1:3] == ["spool", "inspect"]:
        assert json.loads(stdout)["name"] == words[3]
    if "--version" in words:
        assert stdout.startswith("meterhouse, version "), stdout
    if "--help" in words:
        assert "Usage:" in stdout
    assert (stdout + result.stderr).strip(), f"{shown}: printed nothing"


def remember(words: list[str], result: Result, state: Pass) -> None:
    """Ids later documented lines refer to."""
    if words[1:3] == ["keys", "create"]:
        state.key_ids.append(re.findall(r"\bmh_([0-9a-f]{16})_", result.stdout)[-1])
    if words[1:4] == ["notify", "channels", "add"]:
        state.channel_ids.append(re.findall(r"\bch_[0-9a-f]+\b", result.stdout)[0])


def find_run(state: Pass) -> None:
    """A run with error logs, and its job: what RUN_ID and JOB stand for."""
    found = state.invoke(
        "sql",
        "SELECT l.run_id, any(r.job_id) AS job_id FROM job_logs AS l "
        "JOIN job_runs AS r ON r.run_id = l.run_id WHERE l.level = 'error' "
        "GROUP BY l.run_id ORDER BY l.run_id LIMIT 1",
        "--format",
        "json",
    )
    assert found.exit_code == 0, found.output
    (row,) = json.loads(found.stdout)
    state.run_id, state.job_id = row["run_id"], row["job_id"]


def run_service_command(state: Pass, tmp: Path) -> None:
    """`meterhouse run`: down, it starts, serves and stops with exit code 0 on SIGTERM;
    up, it is the service every command of this pass goes through, and a second one
    refuses, naming it."""
    if state.service is not None:
        assert requests.get(f"{state.service.url}/readyz", timeout=10).status_code == 200
        # The one command that needs the data directory itself says what to do instead.
        second = state.invoke("run", "--port", "0")
        assert second.exit_code == 1 and "stop it first" in second.output, second.output
        assert state.service.url in second.output
        return
    own = {k: v for k, v in state.env.items() if not k.startswith(("MH_CLICKHOUSE", "MH_SPOOL"))}
    (tmp / "run-alone").mkdir(exist_ok=True)
    with running_service(tmp / "run-alone" / "data", **own) as alone:
        assert requests.get(f"{alone.url}/healthz", timeout=10).json() == {"status": "ok"}
        alone.process.send_signal(signal.SIGTERM)
        assert alone.process.wait(timeout=60) == 0


# Commands the README names without showing a use, and changes of every kind the docs
# do not show: each must work while `meterhouse run` holds the store too.
NAMED = [
    ("README.md", "meterhouse migrate --format json"),
    ("README.md", "meterhouse prices sync --format json"),
    ("README.md", "meterhouse reprice --account acme --from 2026-11-01 --to 2026-12-01 --dry-run"),
    ("README.md", "meterhouse reprice --account acme --from 2026-11-01 --to 2026-12-01"),
    ("README.md", "meterhouse accounts create newco --time-zone Europe/Berlin --format json"),
    ("README.md", "meterhouse accounts update newco --plan starter --format json"),
    ("README.md", "meterhouse teams create ops --account newco --format json"),
    ("README.md", "meterhouse projects create batch --account newco --team ops --format json"),
    ("README.md", "meterhouse keys list --all --format json"),
    ("README.md", "meterhouse settings --format json"),
]


def run_documented(state: Pass, tmp: Path) -> list[str]:
    """Every documented line in order; returns what failed, each with its output."""
    failures: list[str] = []
    setup = state.invoke("demo")  # scripts/demo.sh: the README's first step
    assert setup.exit_code == 0, setup.output
    (state.cwd / DOC_CUSTOM_FILE).write_text(doc_examples()[0], encoding="utf-8")
    find_run(state)
    for doc, line in [*documented(), *NAMED]:
        words = substitute(shlex.split(line, comments=True), state)
        shown = f"[{state.name}] {doc}: {' '.join(words)}"
        if words[1:] == ["run"]:
            run_service_command(state, tmp)
            continue
        result = state.invoke(*words[1:])
        if words[1:3] == NEEDS_A_SERVER and "--dry-run" not in words:
            if result.exit_code != 1 or SERVER_REFUSAL not in result.output:
                failures.append(f"{shown}\n  expected the embedded-store refusal:\n{result.output}")
            continue
        if result.exit_code != 0:
            failures.append(f"{shown}\n  exit {result.exit_code}:\n{result.output}")
            continue
        try:
            check_shape(words, result, state)
            remember(words, result, state)
        except (AssertionError, ValueError, IndexError, OSError) as exc:
            failures.append(f"{shown}\n  output not as documented ({exc!r}):\n{result.output}")
    return failures


def test_every_documented_command_runs_with_the_service_down_and_up(
    tmp_path: Path,
    chdb_data_dir: Path,
    database_name: str,
    doubles: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Down: the embedded store in this process (its one data directory, a fresh database).
    down_dir = tmp_path / "down"
    down_dir.mkdir()
    monkeypatch.chdir(down_dir)
    down = Pass(
        "down",
        {
            **doubles,
            "MH_CLICKHOUSE_URL": f"chdb://{chdb_data_dir}",
            "MH_CLICKHOUSE_DATABASE": database_name,
            "MH_SPOOL_DIR": str(down_dir / "spool"),
        },
        down_dir,
    )
    keep_dead_letter(down_dir / "spool")
    failures = run_documented(down, tmp_path)

    # Up: `meterhouse run` owns a fresh embedded store; every command goes through it.
    up_dir = tmp_path / "up"
    up_dir.mkdir()
    monkeypatch.chdir(up_dir)
    data = up_dir / "data"
    keep_dead_letter(data / "meterhouse-spool")  # the service's spool, by default
    env = {**doubles, "MH_CLICKHOUSE_URL": f"chdb://{data}"}
    with running_service(data, **doubles) as service:
        up = Pass(
            "up",
            # demo --via-api starts its own ingest service: its spool goes here.
            {**env, "XDG_DATA_HOME": str(up_dir / "xdg")},
            up_dir,
            service,
        )
        failures += run_documented(up, tmp_path)
    assert not failures, "\n\n".join(failures)
    # The up pass went through the service: its store holds what the commands wrote.
    done = subprocess.run(
        [METERHOUSE, "users", "list", "--account", "acme", "--format", "json"],
        env=cli_env(data, **doubles),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "olivia" in {user["user_id"] for user in json.loads(done.stdout)}
