"""API keys: create, list, revoke, and check the bearer tokens clients present.

A key is shown once, as ``mh_<key_id>_<secret>``. Only ``sha256(secret)`` is stored
(table api_keys); the secret has 256 bits of entropy, so a plain SHA-256 is enough (no
slow hash needed) and the comparison is constant-time. ``key_id`` is public: listings and
the audit log show it. Ingest keys are scoped to one CloudEvents ``source`` and
optionally one account. Rows are versioned (ReplacingMergeTree on updated_at); reads use
FINAL, so a revocation is what every reader sees as soon as it is written.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from meterhouse.access.tenants import audited_write, check_id, now_utc
from meterhouse.errors import MeterhouseError
from meterhouse.store.base import Store

PURPOSES: Final = ("ingest", "read", "admin")
Purpose = Literal["ingest", "read", "admin"]
TOKEN_PREFIX: Final = "mh"  # noqa: S105 - a public prefix, not a secret
_KEY_ID: Final = re.compile(r"^[0-9a-f]{16}$")
_SOURCE: Final = re.compile(r"^[\x21-\x7e]{1,256}$")
_DURATION: Final = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

AuthFailure = Literal["missing", "malformed", "unknown", "bad_secret", "revoked", "expired"]


class ApiKeyError(MeterhouseError):
    """A key's fields are not acceptable, or the key does not exist."""


@dataclass(frozen=True)
class ApiKey:
    """One key as stored, without its hash."""

    key_id: str
    purpose: str
    source: str
    account_id: str
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    user_id: str = ""  # read keys: the user whose role bindings apply

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {**asdict(self), "state": self.state(now or now_utc())}


@dataclass(frozen=True)
class StoredKey:
    """A key and its hash: what authentication needs."""

    key: ApiKey
    key_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def format_token(key_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """``mh_<key_id>_<secret>`` -> (key_id, secret); None when it has another shape."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not _KEY_ID.match(key_id) or not 20 <= len(secret) <= 200:
        return None
    return key_id, secret


def secret_matches(stored: StoredKey, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored.key_hash)


def check_token(
    stored: StoredKey | None, secret: str, now: datetime
) -> tuple[ApiKey | None, AuthFailure | None]:
    """The key a token proves, or why it proves none (the reason is logged, never shown)."""
    if stored is None:
        return None, "unknown"
    if not secret_matches(stored, secret):
        return None, "bad_secret"
    state = stored.key.state(now)
    if state == "revoked":
        return None, "revoked"
    if state == "expired":
        return None, "expired"
    return stored.key, None


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` -> timedelta."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ApiKeyError(
            f"cannot read duration {text!r}: use a positive number and a unit s, m, h, d or w "
            "(e.g. 90d)"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


_COLUMNS: Final = (
    "key_id, key_hash, purpose, source, account_id, description, created_at, expires_at, "
    "revoked_at, updated_at, user_id"
)


def _stored(row: dict[str, Any]) -> StoredKey:
    return StoredKey(
        key=ApiKey(
            key_id=row["key_id"],
            purpose=row["purpose"],
            source=row["source"],
            account_id=row["account_id"],
            description=row["description"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            user_id=row["user_id"],
        ),
        key_hash=row["key_hash"],
    )


def get_stored_key(store: Store, key_id: str) -> StoredKey | None:
    if not _KEY_ID.match(key_id):
        return None
    result = store.query(
        f"SELECT {_COLUMNS} FROM api_keys FINAL WHERE key_id = {{k:String}}", {"k": key_id}
    )
    row = next(result.dicts(), None)
    return _stored(row) if row else None


def get_key(store: Store, key_id: str) -> ApiKey | None:
    stored = get_stored_key(store, key_id)
    return stored.key if stored else None


def list_keys(store: Store, *, include_inactive: bool = False) -> list[ApiKey]:
    result = store.query(f"SELECT {_COLUMNS} FROM api_keys FINAL ORDER BY created_at, key_id")
    keys = [_stored(row).key for row in result.dicts()]
    if include_inactive:
        return keys
    now = now_utc()
    return [key for key in keys if key.state(now) == "active"]


def _insert(store: Store, row: dict[str, Any]) -> None:
    store.insert("api_keys", {name: [value] for name, value in row.items()})


def create_key(
    store: Store,
    *,
    purpose: str,
    source: str,
    account_id: str = "",
    expires_in: timedelta | None = None,
    description: str = "",
    actor: str,
    user_id: str = "",
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its token, which is never shown again.

    A read key belongs to one user of one account and reads what that user's role
    bindings allow (meterhouse/access); the user must exist.
    """
    if purpose not in PURPOSES:
        raise ApiKeyError(f"unknown purpose {purpose!r}; purposes: {', '.join(PURPOSES)}")
    if purpose == "ingest" and not source:
        raise ApiKeyError("an ingest key needs --source: the CloudEvents source it may send as")
    if source and not _SOURCE.match(source):
        raise ApiKeyError(f"source {source!r} must be 1-256 printable characters without spaces")
    if account_id:
        check_id("account", account_id)
    if len(description) > 1000:
        raise ApiKeyError("description is longer than 1000 characters")
    _check_owner(store, purpose, account_id, user_id)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = now_utc()
    row = {
        "key_id": key_id,
        "key_hash": hash_secret(secret),
        "purpose": purpose,
        "source": source,
        "account_id": account_id,
        "description": description,
        "created_at": now,
        "expires_at": now + expires_in if expires_in else None,
        "revoked_at": None,
        "updated_at": now,
        "user_id": user_id,
    }
    key = audited_write(
        store,
        lambda: _insert(store, row),
        lambda: get_key(store, key_id),
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=key_id,
        account_id=account_id,
        before=None,
        shown=lambda stored: stored.as_dict(now),
    )
    return key, format_token(key_id, secret)


def _check_owner(store: Store, purpose: str, account_id: str, user_id: str) -> None:
    """A read key's user must exist in its account; other keys belong to no user.

    A read key without a user has no role bindings, so it reads nothing (the CLI asks for
    --user and --account).
    """
    if not user_id:
        return
    if purpose != "read":
        raise ApiKeyError(f"only read keys belong to a user; a {purpose} key cannot")
    if not account_id:
        raise ApiKeyError("a read key's user belongs to an account: give --account too")
    check_id("user", user_id)
    found = store.query(
        "SELECT count() FROM users FINAL WHERE account_id = {a:String} AND user_id = {u:String}",
        {"a": account_id, "u": user_id},
    ).scalar()
    if not found:
        raise ApiKeyError(
            f"no user {user_id} in account {account_id}; add it with `meterhouse users add`"
        )


def revoke_key(store: Store, key_id: str, *, actor: str) -> ApiKey:
    """Revoke a key at once; revoking a revoked key changes nothing and is not an error."""
    stored = get_stored_key(store, key_id)
    if stored is None:
        raise ApiKeyError(f"no API key {key_id!r}; `meterhouse keys list --all` shows them")
    before = stored.key
    if before.revoked_at is not None:
        return before
    row = _row_of(stored)
    now = now_utc()
    # The version must grow even when clocks tie, or FINAL could keep the old row.
    row["updated_at"] = max(now, _updated_at(store, key_id) + timedelta(milliseconds=1))
    row["revoked_at"] = now
    return audited_write(
        store,
        lambda: _insert(store, row),
        lambda: get_key(store, key_id),
        actor=actor,
        action="api_key.revoke",
        target_type="api_key",
        target_id=key_id,
        account_id=before.account_id,
        before=before.as_dict(now),
        shown=lambda stored: stored.as_dict(now),
    )


def _updated_at(store: Store, key_id: str) -> datetime:
    value = store.query(
        "SELECT max(updated_at) FROM api_keys WHERE key_id = {k:String}", {"k": key_id}
    ).scalar()
    assert isinstance(value, datetime)
    return value


def _row_of(stored: StoredKey) -> dict[str, Any]:
    key = stored.key
    return {
        "key_id": key.key_id,
        "key_hash": stored.key_hash,
        "purpose": key.purpose,
        "source": key.source,
        "account_id": key.account_id,
        "description": key.description,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "user_id": key.user_id,
    }
