"""Channel secrets at rest: sealed with MH_NOTIFY_SECRET_KEY, opened only to send.

A webhook's signing secret must be recovered to sign, and a Slack incoming-webhook URL
to post, so they cannot be stored as hashes. The standard library has no block cipher,
so the sealing is HMAC-SHA256 in counter mode for the key stream and an HMAC-SHA256 tag
over nonce and ciphertext (encrypt-then-MAC), with separate keys derived from the
setting. A wrong key or a changed byte fails the tag check instead of yielding garbage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from meterhouse.notify.errors import NotifyError

_PREFIX: Final = "v1."
_NONCE_BYTES: Final = 16
_TAG_BYTES: Final = 32


def _keys(key: str) -> tuple[bytes, bytes]:
    if len(key) < 16:
        raise NotifyError(
            "MH_NOTIFY_SECRET_KEY is not set (or shorter than 16 characters): channel secrets "
            "are sealed with it. Make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and keep it."
        )
    root = hashlib.sha256(key.encode()).digest()
    return (
        hmac.new(root, b"meterhouse notify encrypt", hashlib.sha256).digest(),
        hmac.new(root, b"meterhouse notify authenticate", hashlib.sha256).digest(),
    )


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (
        hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        for counter in range((length + 31) // 32)
    )
    return b"".join(blocks)[:length]


def seal(plain: str, key: str) -> str:
    enc_key, mac_key = _keys(key)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    data = plain.encode()
    cipher = bytes(a ^ b for a, b in zip(data, _stream(enc_key, nonce, len(data)), strict=True))
    tag = hmac.new(mac_key, nonce + cipher, hashlib.sha256).digest()
    return _PREFIX + base64.urlsafe_b64encode(nonce + cipher + tag).decode()


def unseal(sealed: str, key: str) -> str:
    enc_key, mac_key = _keys(key)
    if not sealed.startswith(_PREFIX):
        raise NotifyError("a sealed channel secret has an unknown format")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
    except ValueError:
        raise NotifyError("a sealed channel secret is damaged") from None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise NotifyError("a sealed channel secret is damaged")
    nonce, cipher, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = hmac.new(mac_key, nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise NotifyError(
            "a channel secret does not open with MH_NOTIFY_SECRET_KEY (was the key changed?)"
        )
    plain = bytes(a ^ b for a, b in zip(cipher, _stream(enc_key, nonce, len(cipher)), strict=True))
    return plain.decode()
