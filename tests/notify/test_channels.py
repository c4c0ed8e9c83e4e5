"""Channels: added, listed, removed and audited; only owners and admins of the account."""

from __future__ import annotations

import json

import pytest

from meterhouse.notify import channels as ch
from meterhouse.notify.errors import NotifyError
from meterhouse.store.base import Store
from tests.notify.conftest import SECRET_KEY


def add(store: Store, account: str = "acme", **options: object) -> tuple[ch.Channel, str]:
    defaults: dict[str, object] = {
        "kind": "webhook",
        "target": "https://hooks.acme.example/x",
        "secret_key": SECRET_KEY,
        "actor": "test",
    }
    defaults.update(options)
    kind, target = str(defaults.pop("kind")), str(defaults.pop("target"))
    return ch.add_channel(store, account, kind, target, **defaults)  # type: ignore[arg-type]


def test_webhook_secret_is_shown_once_and_stored_sealed(world: Store) -> None:
    channel, secret = add(world, min_severity="warning", kinds=("budget", "jobs"))
    assert secret.startswith("whsec_")
    stored = world.query("SELECT secret_sealed FROM notification_channels").scalar()
    assert secret not in str(stored) and str(stored).startswith("v1.")
    listed = ch.list_channels(world, "acme")
    assert [c.public() for c in listed] == [channel.public()]
    assert secret not in json.dumps(listed[0].public())
    audit = world.query(
        "SELECT action, after FROM audit_log WHERE target_type = 'notification_channel'"
    ).rows
    assert audit[0][0] == "notification_channel.create" and secret not in audit[0][1]


def test_slack_url_is_the_secret_and_never_listed(world: Store) -> None:
    channel, shown = add(world, kind="slack", target="https://hooks.slack.com/services/T/B/zzz")
    assert shown == "" and channel.target == "slack webhook on hooks.slack.com"
    assert "zzz" not in json.dumps(ch.list_channels(world, "acme")[0].public())


def test_removal_is_a_new_version_and_audited(world: Store) -> None:
    channel, _ = add(world)
    ch.remove_channel(world, "acme", channel.channel_id, actor="test")
    assert ch.list_channels(world, "acme") == []
    actions = world.query(
        "SELECT action FROM audit_log WHERE target_id = {c:String} ORDER BY at",
        {"c": channel.channel_id},
    ).rows
    assert [a[0] for a in actions] == [
        "notification_channel.create",
        "notification_channel.delete",
    ]


@pytest.mark.parametrize("user", ["olivia", "adam"])
def test_owners_and_admins_manage_their_accounts_channels(world: Store, user: str) -> None:
    channel, _ = add(world, acting_user=user)
    row = world.query(
        "SELECT actor FROM audit_log WHERE target_id = {c:String}", {"c": channel.channel_id}
    ).scalar()
    assert row == f"user:acme/{user} via test"


def test_members_and_other_accounts_users_may_not(world: Store) -> None:
    with pytest.raises(NotifyError, match="owner or admin"):
        add(world, acting_user="mia")
    with pytest.raises(NotifyError):
        add(world, acting_user="gus")  # globex's owner is no user of acme
    assert ch.list_channels(world, "acme") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "pager"}, "channel type"),
        ({"target": "ftp://x"}, "http"),
        ({"kind": "email", "target": "not-an-address"}, "addresses"),
        ({"min_severity": "page"}, "severity"),
        ({"kinds": ("weather",)}, "unknown alert kind"),
    ],
)
def test_bad_channels_are_refused_with_a_reason(
    world: Store, options: dict[str, object], message: str
) -> None:
    with pytest.raises(NotifyError, match=message):
        add(world, **options)


def test_unknown_account_is_refused(world: Store) -> None:
    with pytest.raises(NotifyError, match="no account"):
        add(world, account="nope")


def test_a_channel_takes_the_severities_and_kinds_it_wants() -> None:
    channel = ch.Channel("acme", "ch_1", "email", "a@b.c", "warning", ("budget",))
    assert channel.wants("MeterhouseBudget80PercentUsed", "warning")
    assert channel.wants("MeterhouseBudgetExceeded", "critical")
    assert not channel.wants("MeterhouseBudget50PercentUsed", "info")
    assert not channel.wants("MeterhouseJobRunFailed", "critical")
    assert ch.Channel("acme", "ch_2", "email", "a@b.c").wants("Anything", "unknown")
