"""Job log search: every line of one run, or the errors of a time window, by text.

Each filter is written the way one of job_logs' indexes can answer it: ``run_id =`` the
bloom filter idx_run, ``level IN`` the set index, the time window the daily partitions,
and ``--search`` the n-gram index idx_search, whose expression ``SEARCH_EXPRESSION`` must
match the one in clickhouse/schema/0030_jobs_current.sql character for character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from meterhouse import records as r
from meterhouse.jobs.errors import JobsError
from meterhouse.jobs.queries import check_kind, check_limit
from meterhouse.store.base import Store

SEARCH_EXPRESSION: Final = r"lower(concat(message, '\n', error_type, '\n', error_message))"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.I)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now: datetime) -> datetime:
    """'90s', '15m', '1h', '2d', '1w' before ``now``, or an ISO 8601 time (UTC if no zone)."""
    found = _DURATION.match(text)
    try:
        if found:
            seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2).lower()]
            parsed = now - timedelta(seconds=seconds)
        else:
            parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise JobsError(
            f"cannot read {text!r} as a time: give a duration such as 90s, 15m, 1h, 2d, 1w "
            "or an ISO time such as 2026-11-20T08:00:00Z"
        ) from None
    except OverflowError:
        parsed = datetime.min
    # ClickHouse's times run from 1970 (for these columns) to 2299: out of range is a 400.
    if not 1970 <= parsed.year <= 2299:
        raise JobsError(f"{text!r} is out of range: give a time from 1970 to 2299")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def levels_from(level: str) -> list[str]:
    """The level and every more severe one: 'warning' -> ['warning', 'error']."""
    if level not in r.LOG_LEVELS:
        raise JobsError(f"unknown log level {level!r}; use one of {', '.join(r.LOG_LEVELS)}")
    return list(r.LOG_LEVELS[r.LOG_LEVELS.index(level) :])


def like_pattern(text: str) -> str:
    """A LIKE pattern finding ``text`` anywhere, case-insensitively, wildcards escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class LogQuery:
    """What to look for. A run id alone, or a ``since`` time, bounds what is read."""

    run_id: str = ""
    job_id: str = ""
    account_id: str = ""
    kind: str = ""
    min_level: str = ""
    since: datetime | None = None
    until: datetime | None = None
    search: str = ""
    limit: int = 100
    with_stack_trace: bool = False


def _conditions(query: LogQuery) -> tuple[list[str], dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if query.run_id:
        conditions.append("run_id = {run:String}")
        params["run"] = query.run_id
    if query.job_id:
        conditions.append("job_id = {job:String}")
        params["job"] = query.job_id
    if query.account_id:
        conditions.append("account_id = {account:String}")
        params["account"] = query.account_id
    if query.kind:
        conditions.append("kind = {kind:String}")
        params["kind"] = check_kind(query.kind)
    if query.min_level:
        conditions.append("level IN {levels:Array(String)}")
        params["levels"] = levels_from(query.min_level)
    if query.since is not None:
        conditions.append("log_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = query.since
    if query.until is not None:
        conditions.append("log_time < {until:DateTime64(3, 'UTC')}")
        params["until"] = query.until
    if query.search:
        conditions.append(f"{SEARCH_EXPRESSION} LIKE {{pattern:String}}")
        params["pattern"] = like_pattern(query.search)
    return conditions, params


def log_search_sql(query: LogQuery) -> tuple[str, dict[str, Any]]:
    """The statement and parameters for ``query`` (also used to EXPLAIN it in tests)."""
    if not query.run_id and query.since is None:
        raise JobsError(
            "say which logs: a run (--run RUN_ID) or a time window (--since 1h); searching "
            "every log ever kept would read the whole table"
        )
    check_limit(query.limit)
    conditions, params = _conditions(query)
    # One run reads like a story (oldest first); a window shows the latest first.
    order = "ASC" if query.run_id else "DESC"
    trace = ", stack_trace" if query.with_stack_trace else ""
    sql = (
        "SELECT log_time AS time, account_id AS account, job_id AS job, run_id AS run, kind, "
        f"level, message, error_type, error_message{trace} "
        f"FROM job_logs WHERE {' AND '.join(conditions)} "
        f"ORDER BY log_time {order}, event_id {order} LIMIT {{limit:UInt32}}"
    )
    params["limit"] = query.limit
    return sql, params


def search_logs(store: Store, query: LogQuery) -> list[dict[str, Any]]:
    sql, params = log_search_sql(query)
    return list(store.query(sql, params).dicts())
