"""Each account's time zone and plan, which decide an event's local date and its price.

Looked up once per account and cached (meterhouse.processing.columns asks for every
event it lays out).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterhouse.store.base import Store


@dataclass(frozen=True)
class AccountInfo:
    time_zone: ZoneInfo
    plan: str
    exists: bool = True  # False: no such account; UTC and the free plan stand in


class AccountDirectory:
    """Time zone and plan per account, read from the store and cached.

    ``max_age_seconds`` bounds how long a cached entry is trusted, so a long-running
    service sees a changed time zone or plan; None keeps entries until ``refresh``
    (right for one-shot runs such as the demo).
    """

    def __init__(self, store: Store, *, max_age_seconds: float | None = None) -> None:
        self.store = store
        self.max_age_seconds = max_age_seconds
        self._cache: dict[str, tuple[AccountInfo, float]] = {}

    def refresh(self) -> None:
        self._cache.clear()

    def get(self, account_id: str) -> AccountInfo:
        cached = self._cache.get(account_id)
        now = time.monotonic()
        if cached is not None and (
            self.max_age_seconds is None or now - cached[1] < self.max_age_seconds
        ):
            return cached[0]
        row = self.store.query(
            "SELECT time_zone, plan FROM accounts FINAL WHERE account_id = {a:String}",
            {"a": account_id},
        ).rows
        tz, plan = (row[0][0], row[0][1]) if row else ("UTC", "free")
        info = AccountInfo(_zone(str(tz)), str(plan) or "free", exists=bool(row))
        self._cache[account_id] = (info, now)
        return info

    def unknown(self, account_ids: Iterable[str]) -> set[str]:
        """The ids among ``account_ids`` that name no account, in one query at most.

        An id cached as missing is asked again: an account created a moment ago must be
        accepted at once, not after the cache's age.
        """
        now = time.monotonic()
        ask = set()
        for account_id in set(account_ids):
            cached = self._cache.get(account_id)
            fresh = cached is not None and (
                self.max_age_seconds is None or now - cached[1] < self.max_age_seconds
            )
            if not (fresh and cached is not None and cached[0].exists):
                ask.add(account_id)
        if not ask:
            return set()
        rows = self.store.query(
            "SELECT account_id, time_zone, plan FROM accounts FINAL"
            " WHERE account_id IN {ids:Array(String)}",
            {"ids": sorted(ask)},
        ).rows
        for account_id, tz, plan in rows:
            self._cache[str(account_id)] = (AccountInfo(_zone(str(tz)), str(plan) or "free"), now)
        return ask - {str(row[0]) for row in rows}


def _zone(name: str) -> ZoneInfo:
    """The account's zone; UTC when the stored name is empty or unknown to this host."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
