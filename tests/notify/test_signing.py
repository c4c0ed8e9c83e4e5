"""Webhook signatures and sealed channel secrets."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from meterhouse.notify.errors import NotifyError
from meterhouse.notify.sealing import seal, unseal
from meterhouse.notify.signing import sign, verify

KEY = "a-sealing-key-of-some-length"


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    body = b'{"alert": "x"}'
    header = sign("whsec_abc", body, timestamp=1_700_000_000)
    expected = hmac.new(b"whsec_abc", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify("whsec_abc", header, body, now=1_700_000_100)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_other", b'{"alert": "x"}', 1_700_000_000),  # another channel's secret
        ("whsec_abc", b'{"alert": "y"}', 1_700_000_000),  # a changed body
        ("whsec_abc", b'{"alert": "x"}', 1_700_000_301),  # replayed too late
    ],
)
def test_signature_refuses_other_secret_body_or_old_timestamp(
    secret: str, body: bytes, now: int
) -> None:
    header = sign("whsec_abc", b'{"alert": "x"}', timestamp=1_700_000_000)
    assert not verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1700000000"])
def test_malformed_signature_headers_do_not_verify(header: str) -> None:
    assert not verify("whsec_abc", header, b"{}", now=1_700_000_000)


def test_sealed_secret_opens_with_its_key_only() -> None:
    sealed = seal("https://hooks.slack.com/services/T/B/secret", KEY)
    assert "secret" not in sealed and "slack" not in sealed
    assert seal("same", KEY) != seal("same", KEY), "a fresh nonce each time"
    assert unseal(sealed, KEY) == "https://hooks.slack.com/services/T/B/secret"
    with pytest.raises(NotifyError, match="does not open"):
        unseal(sealed, KEY + "-changed")


def test_damaged_sealed_secret_is_refused() -> None:
    sealed = seal("whsec_abc", KEY)
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(NotifyError):
        unseal(flipped, KEY)
    with pytest.raises(NotifyError):
        unseal("v1.AAAA", KEY)


def test_sealing_needs_a_key() -> None:
    with pytest.raises(NotifyError, match="MH_NOTIFY_SECRET_KEY"):
        seal("whsec_abc", "")
