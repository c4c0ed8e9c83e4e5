"""Who is sending: the ingest key behind a bearer token, and a brake on guessing.

Keys are read from the store and cached for ``MH_INGEST_KEY_CACHE_SECONDS`` (2 s by
default), so a revocation written by another process takes effect within that time (plus
the one store read that refreshes it, which other requests do not wait for); one
made through this service's admin API (`meterhouse keys revoke` while the service runs)
drops the cached entry at once. The secret is checked on every request, against the
cached hash, in constant time.

Failed checks are limited per client IP by a token bucket: ``burst`` failures at once,
refilled at ``per_second``. An IP whose bucket is empty gets 429 before its token is
even looked at, so unknown keys cannot make the service query the store without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from meterhouse.access.keys import (
    ApiKey,
    AuthFailure,
    StoredKey,
    check_token,
    get_stored_key,
    parse_token,
)
from meterhouse.errors import StoreError
from meterhouse.store.base import Store

MAX_TRACKED_CLIENTS = 10_000


class KeyDirectory:
    def __init__(self, store: Store, ttl_seconds: float) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[StoredKey | None, float]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def lookup(self, key_id: str) -> StoredKey | None:
        """The stored key (blocking: may query the store); None when there is none."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
            if cached is not None and now - cached[1] < self.ttl_seconds:
                return cached[0]
            if cached is not None and key_id in self._refreshing:
                # Another request is reading it (maybe waiting behind a large insert):
                # one read per key at a time, the others go on with the last answer.
                return cached[0]
            self._refreshing.add(key_id)
        try:
            stored = get_stored_key(self.store, key_id)
        except StoreError:
            if cached is None:
                raise
            # ClickHouse is down: keep accepting what the spool can hold with the key as
            # last read (no revocation can be read meanwhile either).
            return cached[0]
        finally:
            with self._lock:
                self._refreshing.discard(key_id)
        with self._lock:
            if len(self._cache) >= MAX_TRACKED_CLIENTS:
                self._cache.clear()
            self._cache[key_id] = (stored, now)
        return stored

    def invalidate(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def authenticate(self, token: str, now: datetime) -> tuple[ApiKey | None, AuthFailure | None]:
        if not token:
            return None, "missing"
        parsed = parse_token(token)
        if parsed is None:
            return None, "malformed"
        key_id, secret = parsed
        return check_token(self.lookup(key_id), secret, now)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FailureLimiter:
    """Token bucket per client IP, spent by failed authentications only."""

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = burst
        self.per_second = per_second
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, client: str, now: float) -> _Bucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[client] = bucket
            if len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second
            )
            bucket.updated = now
            self._buckets.move_to_end(client)
        return bucket

    def retry_after(self, client: str) -> int | None:
        """Seconds to wait when this client may not try now; None when it may."""
        now = time.monotonic()
        with self._lock:
            bucket = self._bucket(client, now)
            if bucket.tokens >= 1:
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.per_second))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            bucket = self._bucket(client, now)
            bucket.tokens = max(0.0, bucket.tokens - 1)


class AuthBrake:
    """Failed authentications limited per client address and per key id, such that a
    good key keeps working.

    An address whose bucket is empty gets 429 before its token is looked at, except for a
    key id that authenticated successfully before (a known good key): that one is checked,
    under its own bucket, so guessing from a shared address (a NAT, a proxy) cannot lock
    out its real users, and guessing one key's secret locks out only that key's use from
    limited addresses. Tokens that need no store read (the admin token) are checked before
    any limit by the callers.
    """

    def __init__(self, burst: int, per_second: float) -> None:
        self.addresses = FailureLimiter(burst, per_second)
        self.keys = FailureLimiter(burst, per_second)
        self._good: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, key_id: str | None) -> int | None:
        """Seconds to wait when this attempt may not be checked now; None when it may."""
        wait = self.addresses.retry_after(client)
        if wait is None:
            return None
        with self._lock:
            known = key_id is not None and key_id in self._good
        if known and key_id is not None and self.keys.retry_after(key_id) is None:
            return None
        return wait

    def failed(self, client: str, key_id: str | None) -> None:
        self.addresses.failed(client)
        if key_id is not None:
            self.keys.failed(key_id)

    def succeeded(self, key_id: str) -> None:
        with self._lock:
            self._good[key_id] = None
            self._good.move_to_end(key_id)
            if len(self._good) > MAX_TRACKED_CLIENTS:
                self._good.popitem(last=False)


def key_id_of(token: str) -> str | None:
    """The key id a bearer token names (no secret checked), or None."""
    parsed = parse_token(token) if token else None
    return parsed[0] if parsed else None
