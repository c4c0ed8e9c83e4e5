"""`meterhouse notify` from the command line, on an embedded store, to a real receiver."""

from __future__ import annotations

import json

from meterhouse.notify.signing import verify
from tests.alerting.stack import WebhookReceiver
from tests.notify.conftest import SECRET_KEY
from tests.support.inprocess import InProcess

ENV = {"MH_NOTIFY_SECRET_KEY": SECRET_KEY}


def test_help_teaches_the_commands(meterhouse_here: InProcess) -> None:
    done = meterhouse_here("notify", "--help")
    assert done.returncode == 0
    for word in ("channels", "log", "alertmanager-config", "docs/alerts.md"):
        assert word in done.stdout
    add_help = meterhouse_here("notify", "channels", "add", "--help").stdout
    assert "--min-severity" in add_help and "Examples:" in add_help


def test_add_test_list_log_and_remove_a_channel(
    meterhouse_here: InProcess, hooks: WebhookReceiver
) -> None:
    assert meterhouse_here("migrate").returncode == 0
    assert meterhouse_here("accounts", "create", "acme").returncode == 0
    added = meterhouse_here(
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

    tested = meterhouse_here("notify", "channels", "test", channel_id, "--account", "acme", **ENV)
    assert tested.returncode == 0, tested.stderr
    got = hooks.at("/cli")[0]
    assert verify(secret, got.headers["Meterhouse-Signature"], got.body)

    listed = meterhouse_here(
        "notify", "channels", "list", "--account", "acme", "--format", "json", **ENV
    )
    rows = json.loads(listed.stdout)
    assert [(r["channel_id"], r["kinds"], r["health"]) for r in rows] == [
        (channel_id, "budget", "ok")
    ]
    assert secret not in listed.stdout

    log = meterhouse_here("notify", "log", "--account", "acme", "--format", "json", **ENV)
    assert [(r["alert"], r["outcome"]) for r in json.loads(log.stdout)] == [
        ("MeterhouseNotificationTest", "sent")
    ]

    removed = meterhouse_here("notify", "channels", "remove", channel_id, "--account", "acme")
    assert removed.returncode == 0, removed.stderr
    after = meterhouse_here("notify", "channels", "list", "--account", "acme")
    assert "no channels for account acme" in after.stdout


def test_errors_say_what_to_do(meterhouse_here: InProcess) -> None:
    assert meterhouse_here("migrate").returncode == 0
    assert meterhouse_here("accounts", "create", "acme").returncode == 0
    no_key = meterhouse_here(
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
    neither = meterhouse_here("notify", "channels", "list")
    assert neither.returncode == 2 and "--account ACCOUNT, or --operators" in neither.stderr
    failing = meterhouse_here(
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
    test = meterhouse_here("notify", "channels", "test", channel_id, "--account", "acme", **ENV)
    assert test.returncode == 1 and "MH_SMTP_HOST" in test.stderr
