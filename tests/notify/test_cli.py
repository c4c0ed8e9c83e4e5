"""`meterhouse notify` from the command line, on an embedded store, to a real receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterhouse.notify.signing import verify
from tests.alerting.stack import WebhookReceiver
from tests.notify.conftest import SECRET_KEY
from tests.support.cli import meterhouse

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

ENV = {"MH_NOTIFY_SECRET_KEY": SECRET_KEY}


def test_help_teaches_the_commands(tmp_path: Path) -> None:
    done = meterhouse(tmp_path, "notify", "--help")
    assert done.returncode == 0
    for word in ("channels", "log", "alertmanager-config", "docs/alerts.md"):
        assert word in done.stdout
    add_help = meterhouse(tmp_path, "notify", "channels", "add", "--help").stdout
    assert "--min-severity" in add_help and "Examples:" in add_help


def test_add_test_list_log_and_remove_a_channel(tmp_path: Path, hooks: WebhookReceiver) -> None:
    data = tmp_path / "store"
    assert meterhouse(data, "migrate").returncode == 0
    assert meterhouse(data, "accounts", "create", "acme").returncode == 0
    added = meterhouse(
        data,
        "notify",
        "channels",
        "add",
        "--account",
        "acme",
        "--type",
        "webhook",
        "--target",
        hooks.url + "/cli",
        "--kind",
        "budget",
        **ENV,
    )
    assert added.returncode == 0, added.stderr
    channel_id = added.stdout.split()[1]
    secret = next(
        line.split()[-1] for line in added.stdout.splitlines() if line.startswith("signing secret")
    )

    tested = meterhouse(data, "notify", "channels", "test", channel_id, "--account", "acme", **ENV)
    assert tested.returncode == 0, tested.stderr
    got = hooks.at("/cli")[0]
    assert verify(secret, got.headers["Meterhouse-Signature"], got.body)

    listed = meterhouse(
        data, "notify", "channels", "list", "--account", "acme", "--format", "json", **ENV
    )
    rows = json.loads(listed.stdout)
    assert [(r["channel_id"], r["kinds"], r["health"]) for r in rows] == [
        (channel_id, "budget", "ok")
    ]
    assert secret not in listed.stdout

    log = meterhouse(data, "notify", "log", "--account", "acme", "--format", "json", **ENV)
    assert [(r["alert"], r["outcome"]) for r in json.loads(log.stdout)] == [
        ("MeterhouseNotificationTest", "sent")
    ]

    removed = meterhouse(data, "notify", "channels", "remove", channel_id, "--account", "acme")
    assert removed.returncode == 0, removed.stderr
    after = meterhouse(data, "notify", "channels", "list", "--account", "acme")
    assert "no channels for account acme" in after.stdout


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "store"
    assert meterhouse(data, "migrate").returncode == 0
    assert meterhouse(data, "accounts", "create", "acme").returncode == 0
    no_key = meterhouse(
        data,
        "notify",
        "channels",
        "add",
        "--account",
        "acme",
        "--type",
        "webhook",
        "--target",
        "https://example.com/x",
    )
    assert no_key.returncode != 0 and "MH_NOTIFY_SECRET_KEY" in no_key.stderr
    neither = meterhouse(data, "notify", "channels", "list")
    assert neither.returncode == 2 and "--account ACCOUNT, or --operators" in neither.stderr
    failing = meterhouse(
        data,
        "notify",
        "channels",
        "add",
        "--account",
        "acme",
        "--type",
        "email",
        "--target",
        "ops@acme.example",
        **ENV,
    )
    channel_id = failing.stdout.split()[1]
    test = meterhouse(data, "notify", "channels", "test", channel_id, "--account", "acme", **ENV)
    assert test.returncode == 1 and "MH_SMTP_HOST" in test.stderr
