"""Where an account wants to hear about its alerts: its notification channels.

A channel belongs to one account (``account_id`` '' holds the operators' channels) and is
one of three types:

* ``webhook``: a JSON POST signed with a secret made here (signing.py), shown once;
* ``email``: one or more addresses, sent through MH_SMTP_HOST;
* ``slack``: a Slack-compatible incoming-webhook URL (Slack, Mattermost, Rocket.Chat);
  the URL is the credential, so it is sealed and only its host is shown.

Each channel has a severity floor and the alert kinds it wants (empty: all). Changes are
audited like other access changes; acting for a user, only the account's account-wide
owners and admins may make them. Rows are versioned like users (ReplacingMergeTree with
is_deleted).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from meterhouse.access.roles import MANAGE_ROLES
from meterhouse.access.tenants import audit, get_account, now_utc
from meterhouse.access.users import AccessError, list_bindings, require_user
from meterhouse.notify.errors import NotifyError
from meterhouse.notify.sealing import seal
from meterhouse.store.base import Store

ChannelType = Literal["webhook", "email", "slack"]
TYPES: Final = ("webhook", "email", "slack")
SEVERITIES: Final = ("info", "warning", "critical")
KINDS: Final = ("budget", "balance", "jobs", "billing", "service")
OPERATORS: Final = ""
MAX_CHANNELS_PER_ACCOUNT: Final = 20
_TICK: Final = timedelta(milliseconds=1)
_EMAIL: Final = re.compile(r"^[^@\s,]{1,64}@[^@\s,]{1,255}$")

# Alert name -> kind; first match wins. Anything else concerns the platform ("service").
_KIND_OF: Final = (
    ("Budget", "budget"),
    ("CreditBalance", "balance"),
    ("Job", "jobs"),
    ("Stripe", "billing"),
    ("Reconciliation", "billing"),
    ("Plan", "billing"),
    ("Invoice", "billing"),
)


def kind_of(alertname: str) -> str:
    return next((kind for part, kind in _KIND_OF if part in alertname), "service")


def severity_rank(severity: str) -> int:
    """0 info, 1 warning, 2 critical; an unknown severity counts as critical (never lost)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


@dataclass(frozen=True)
class Channel:
    account_id: str
    channel_id: str
    type: str
    target: str
    min_severity: str = "info"
    kinds: tuple[str, ...] = ()
    description: str = ""
    secret_sealed: str = field(default="", repr=False)

    def wants(self, alertname: str, severity: str) -> bool:
        if severity_rank(severity) < severity_rank(self.min_severity):
            return False
        return not self.kinds or kind_of(alertname) in self.kinds

    def public(self) -> dict[str, Any]:
        """What listings, the API and the audit log show: never the secret."""
        return {
            "account_id": self.account_id,
            "channel_id": self.channel_id,
            "type": self.type,
            "target": self.target,
            "min_severity": self.min_severity,
            "kinds": list(self.kinds),
            "description": self.description,
        }


def _check_account(store: Store, account_id: str) -> None:
    if account_id != OPERATORS and get_account(store, account_id) is None:
        raise NotifyError(f"no account {account_id}; `meterhouse accounts list` shows them")


def authorize(store: Store, account_id: str, actor: str, acting_user: str | None) -> str:
    """The actor to audit; refuses unless ``acting_user`` is an account-wide owner or admin."""
    if acting_user is None:
        return actor
    if account_id == OPERATORS:
        raise NotifyError("operators' channels are managed by operators, not account users")
    try:
        require_user(store, account_id, acting_user)
    except AccessError as exc:
        raise NotifyError(str(exc)) from exc
    if not any(
        b.scope == "account" and b.role in MANAGE_ROLES
        for b in list_bindings(store, account_id, acting_user)
    ):
        raise NotifyError(
            f"{acting_user} may not manage the notification channels of {account_id}: that "
            "needs an account-wide owner or admin role"
        )
    return f"user:{account_id}/{acting_user} via {actor}"


def _check_target(kind: str, target: str) -> str:
    target = target.strip()
    if kind == "email":
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        if not addresses or len(addresses) > 10 or not all(_EMAIL.match(a) for a in addresses):
            raise NotifyError(
                f"email target {target!r} must be 1 to 10 addresses like a@example.com, "
                "comma-separated"
            )
        return ",".join(addresses)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(target) > 2000:
        raise NotifyError(f"{kind} target must be an http(s):// URL, got {target[:80]!r}")
    return target


def _check_options(min_severity: str, kinds: tuple[str, ...]) -> None:
    if min_severity not in SEVERITIES:
        raise NotifyError(f"severity floor must be one of {', '.join(SEVERITIES)}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise NotifyError(f"unknown alert kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")


def list_channels(store: Store, account_id: str) -> list[Channel]:
    rows = store.query(
        "SELECT account_id, channel_id, type, target, min_severity, kinds, description, "
        "secret_sealed FROM notification_channels FINAL WHERE account_id = {a:String} "
        "ORDER BY channel_id",
        {"a": account_id},
    ).dicts()
    return [
        Channel(
            str(row["account_id"]),
            str(row["channel_id"]),
            str(row["type"]),
            str(row["target"]),
            str(row["min_severity"]),
            tuple(str(k) for k in row["kinds"]),
            str(row["description"]),
            str(row["secret_sealed"]),
        )
        for row in rows
    ]


def get_channel(store: Store, account_id: str, channel_id: str) -> Channel:
    found = [c for c in list_channels(store, account_id) if c.channel_id == channel_id]
    if not found:
        raise NotifyError(
            f"no channel {channel_id} for {describe_owner(account_id)}; "
            "`meterhouse notify channels list` shows them"
        )
    return found[0]


def describe_owner(account_id: str) -> str:
    return "the operators" if account_id == OPERATORS else f"account {account_id}"


def _write(store: Store, channel: Channel, *, deleted: bool) -> None:
    now = now_utc()
    latest = store.query(
        "SELECT max(updated_at) FROM notification_channels "
        "WHERE account_id = {a:String} AND channel_id = {c:String}",
        {"a": channel.account_id, "c": channel.channel_id},
    ).scalar()
    # A newer version than every stored one, even when the clock ties (add then remove).
    version = max(now, latest + _TICK) if isinstance(latest, datetime) else now
    store.insert(
        "notification_channels",
        {
            "account_id": [channel.account_id],
            "channel_id": [channel.channel_id],
            "type": [channel.type],
            "target": [channel.target],
            "secret_sealed": [channel.secret_sealed],
            "min_severity": [channel.min_severity],
            "kinds": [list(channel.kinds)],
            "description": [channel.description],
            "created_at": [now],
            "updated_at": [version],
            "is_deleted": [1 if deleted else 0],
        },
    )


def add_channel(
    store: Store,
    account_id: str,
    kind: str,
    target: str,
    *,
    secret_key: str,
    min_severity: str = "info",
    kinds: tuple[str, ...] = (),
    description: str = "",
    actor: str,
    acting_user: str | None = None,
) -> tuple[Channel, str]:
    """Create the channel; returns it and the secret to show once ('' for e-mail)."""
    if kind not in TYPES:
        raise NotifyError(f"channel type must be one of {', '.join(TYPES)}, got {kind!r}")
    _check_options(min_severity, kinds)
    target = _check_target(kind, target)
    _check_account(store, account_id)
    who = authorize(store, account_id, actor, acting_user)
    if len(list_channels(store, account_id)) >= MAX_CHANNELS_PER_ACCOUNT:
        raise NotifyError(
            f"{describe_owner(account_id)} has {MAX_CHANNELS_PER_ACCOUNT} channels already; "
            "remove one first"
        )
    shown, sealed = "", ""
    if kind == "webhook":
        shown = "whsec_" + secrets.token_urlsafe(32)
        sealed = seal(shown, secret_key)
    elif kind == "slack":
        sealed = seal(target, secret_key)
        target = f"slack webhook on {urlsplit(target).hostname}"
    channel = Channel(
        account_id,
        "ch_" + secrets.token_hex(6),
        kind,
        target,
        min_severity,
        tuple(sorted(set(kinds))),
        description[:500],
        sealed,
    )
    _write(store, channel, deleted=False)
    audit(
        store,
        actor=who,
        action="notification_channel.create",
        target_type="notification_channel",
        target_id=channel.channel_id,
        account_id=account_id,
        before=None,
        after=channel.public(),
    )
    return channel, shown


def remove_channel(
    store: Store, account_id: str, channel_id: str, *, actor: str, acting_user: str | None = None
) -> Channel:
    who = authorize(store, account_id, actor, acting_user)
    channel = get_channel(store, account_id, channel_id)
    _write(store, channel, deleted=True)
    audit(
        store,
        actor=who,
        action="notification_channel.delete",
        target_type="notification_channel",
        target_id=channel_id,
        account_id=account_id,
        before=channel.public(),
        after=None,
    )
    return channel
