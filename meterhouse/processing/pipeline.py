"""decode -> validate -> rate -> rows: the part of the path that needs the account.

Collectors hand validated events to ``Pipeline.rows``; the result goes to the writer (or,
with durability on, to the spool first). Account time zone and plan are looked up once
per account and cached: they decide the local date and the price.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterhouse import records as r
from meterhouse.processing.rows import TableRows, event_rows
from meterhouse.store.base import Store

Rater = Callable[[r.Event, str, str], r.Rating | None]
"""(event, plan, account id) -> rating, or None when the event is not usage."""


@dataclass(frozen=True)
class AccountInfo:
    time_zone: ZoneInfo
    plan: str


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
        info = AccountInfo(_zone(str(tz)), str(plan) or "free")
        self._cache[account_id] = (info, now)
        return info

    def local_date(self, account_id: str, event: r.Event) -> date:
        return event.time.astimezone(self.get(account_id).time_zone).date()


def _zone(name: str) -> ZoneInfo:
    """The account's zone; UTC when the stored name is empty or unknown to this host."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class Pipeline:
    def __init__(
        self, store: Store, rater: Rater, *, account_cache_seconds: float | None = None
    ) -> None:
        self.accounts = AccountDirectory(store, max_age_seconds=account_cache_seconds)
        self.rater = rater

    def rows(self, events: Iterable[r.Event]) -> TableRows:
        out: TableRows = []
        for event in events:
            info = self.accounts.get(event.account_id)
            rating = self.rater(event, info.plan, event.account_id)
            local = event.time.astimezone(info.time_zone).date()
            out.extend(event_rows(event, rating, local))
        return out
