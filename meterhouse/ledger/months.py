"""Calendar months in an account's time zone: "this month" means the month over there.

Every bound is computed here, in Python, with the same zoneinfo database the pipeline uses
to set ``usage_events.local_date`` at ingest, and then handed to ClickHouse as UTC
instants. So statements, budgets and the stored local dates agree on which day and month
an event belongs to, even in zones whose midnight falls into a daylight-saving gap
(``fold=0`` places a missing midnight at the transition, the first instant of the day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterhouse.ledger.errors import LedgerError, LedgerNotFoundError
from meterhouse.store.base import Store

_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
MIN_ELAPSED: Final = timedelta(days=1)


def parse_month(text: str) -> date:
    """``2026-11`` -> date(2026, 11, 1)."""
    match = _MONTH.match(text.strip())
    # ClickHouse dates end in 2299; a month past that cannot hold usage (and a 500 is no answer).
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1970 <= int(match.group(1)) <= 2299:
        raise LedgerError(f"month {text!r} is not a calendar month: write YYYY-MM, e.g. 2026-11")
    return date(int(match.group(1)), int(match.group(2)), 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class MonthSpan:
    """One calendar month of one time zone, as UTC instants [start, end)."""

    month: date
    zone: ZoneInfo
    start: datetime
    end: datetime

    @classmethod
    def of(cls, month: date, zone: ZoneInfo) -> MonthSpan:
        first = month.replace(day=1)
        return cls(
            first, zone, local_midnight(first, zone), local_midnight(next_month(first), zone)
        )

    @classmethod
    def containing(cls, at: datetime, zone: ZoneInfo) -> MonthSpan:
        return cls.of(at.astimezone(zone).date().replace(day=1), zone)

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")

    def days(self) -> list[date]:
        count = (next_month(self.month) - self.month).days
        return [self.month + timedelta(days=i) for i in range(count)]

    def day_starts(self) -> list[datetime]:
        """UTC start of each local day; an instant's day index is how many are <= it."""
        return [local_midnight(day, self.zone) for day in self.days()]

    def elapsed_fraction(self, at: datetime) -> Decimal:
        """Share of the month gone by at ``at``, counted as at least one day, at most 1.

        The floor keeps the first hours of a month from extrapolating a handful of calls
        into a month-end forecast many times the budget.
        """
        if at >= self.end:
            return Decimal(1)
        elapsed = max(at - self.start, MIN_ELAPSED)
        whole = self.end - self.start
        fraction = Decimal(elapsed // timedelta(milliseconds=1)) / Decimal(
            whole // timedelta(milliseconds=1)
        )
        return min(fraction, Decimal(1))


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LedgerError(f"unknown time zone {name!r}") from exc


def account_zone(store: Store, account_id: str) -> ZoneInfo:
    """The account's time zone; a clear error when the account does not exist."""
    zone = store.query(
        "SELECT time_zone FROM accounts FINAL WHERE account_id = {a:String}", {"a": account_id}
    ).scalar()
    if zone is None:
        raise LedgerNotFoundError(
            f"no account {account_id}; list them with `meterhouse accounts list`"
        )
    return zone_of(str(zone))


def aware(at: datetime, zone: ZoneInfo | None = None) -> datetime:
    """A naive time is read in ``zone`` (UTC when none): every stored time is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=zone or UTC)


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """ISO date or time typed by a person; without an offset it is read in ``zone``."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise LedgerError(
            f"time {text!r} is not ISO 8601: write 2026-11-30, 2026-11-30T18:00 or "
            "2026-11-30T18:00:00+01:00"
        ) from exc
    if not 1970 <= parsed.year <= 2299:
        raise LedgerError(f"time {text!r} is out of range: give a time from 1970 to 2299")
    return aware(parsed, zone).astimezone(UTC)
