"""Job logs: TTL from MH_JOB_LOG_TTL_DAYS, log search, and the indexes searches use."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from meterhouse.jobs import events as ev
from meterhouse.jobs.errors import JobsError
from meterhouse.settings import Settings
from meterhouse.store.base import Store
from meterhouse.store.migrations import Topology, apply_job_log_ttl, migrate
from tests.jobs.helpers import log_line, write


def _table_ttl(store: Store) -> str:
    engine = str(
        store.query(
            "SELECT engine_full FROM system.tables "
            "WHERE database = currentDatabase() AND name = 'job_logs'"
        ).scalar()
    )
    found = re.search(r"TTL (.*?) SETTINGS", engine)
    assert found, engine
    return found.group(1)


def _runs_in_logs(store: Store) -> list[str]:
    return sorted(store.query("SELECT run_id FROM job_logs").column("run_id"))


def test_ttl_follows_the_setting_and_drops_only_older_rows(
    migrated_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    assert _table_ttl(migrated_store) == "toDateTime(log_time) + toIntervalDay(30)"
    lines = [
        log_line("acme", "acme-a", f"age-{days}d", "asset", now - timedelta(days=days), "info", "x")
        for days in (1, 6, 10, 20)
    ]
    write(migrated_store, lines)
    migrated_store.command("OPTIMIZE TABLE job_logs FINAL")
    assert _runs_in_logs(migrated_store) == ["age-10d", "age-1d", "age-20d", "age-6d"]

    # `meterhouse migrate` / `meterhouse run` with MH_JOB_LOG_TTL_DAYS=7:
    monkeypatch.setenv("MH_JOB_LOG_TTL_DAYS", "7")
    days = Settings().job_log_ttl_days
    assert migrate(migrated_store, job_log_ttl_days=days) == []  # no new migration ...
    assert _table_ttl(migrated_store) == "toDateTime(log_time) + toIntervalDay(7)"  # ... new TTL

    # The new TTL is materialized at once: logs already stored expire by it too.
    migrated_store.command("OPTIMIZE TABLE job_logs FINAL")
    assert _runs_in_logs(migrated_store) == ["age-1d", "age-6d"]

    # New rows older than the TTL are dropped as they are written; newer ones stay.
    write(migrated_store, [
        log_line("acme", "acme-a", "late-9d", "asset", now - timedelta(days=9), "error", "late"),
        log_line("acme", "acme-a", "late-2d", "asset", now - timedelta(days=2), "error", "late"),
    ])  # fmt: skip
    migrated_store.command("OPTIMIZE TABLE job_logs FINAL")
    assert _runs_in_logs(migrated_store) == ["age-1d", "age-6d", "late-2d"]

    # Setting it back lengthens the TTL again; applying the same value changes nothing.
    assert apply_job_log_ttl(migrated_store, 30, Topology()) is True
    assert apply_job_log_ttl(migrated_store, 30, Topology()) is False
    assert _table_ttl(migrated_store) == "toDateTime(log_time) + toIntervalDay(30)"


def _sample_logs(now: datetime) -> list:  # type: ignore[type-arg]
    """Four days of logs of two accounts; distinctive errors on one day only."""
    lines = []
    for day in range(4):
        for i in range(40):
            at = now - timedelta(days=day, minutes=i)
            account = ("acme", "globex")[i % 2]
            run = f"run-{day}-{i % 5}"
            lines.append(
                log_line(account, f"{account}-a", run, "asset", at, "info", f"step {i} ok")
            )
    lines += [
        log_line("acme", "acme-hook", "run-hook", "webhook", now - timedelta(days=2, hours=1),
                 "error", "order-events failed",
                 error=("SMTPRecipientsRefused", "550 user unknown"),
                 stack_trace="Traceback ...\nSMTPRecipientsRefused: 550 user unknown"),
        log_line("acme", "acme-hook", "run-hook", "webhook", now - timedelta(days=2, hours=2),
                 "warning", "retrying after 100% of the quota_used"),
        log_line("globex", "globex-a", "run-0-1", "asset", now - timedelta(minutes=90),
                 "error", "asset failed", error=("MemoryError", "out of memory")),
    ]  # fmt: skip
    return lines


def test_log_search_by_run_level_window_account_and_text(migrated_store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    write(migrated_store, _sample_logs(now))

    def search(**fields: object) -> list[dict[str, object]]:
        return ev.search_logs(migrated_store, ev.LogQuery(**fields))  # type: ignore[arg-type]

    story = search(run_id="run-hook")
    assert [row["level"] for row in story] == ["warning", "error"]  # oldest first

    errors = search(min_level="error", since=now - timedelta(days=3))
    assert [(row["account"], row["error_type"]) for row in errors] == [
        ("globex", "MemoryError"), ("acme", "SMTPRecipientsRefused"),
    ]  # newest first  # fmt: skip
    assert "stack_trace" not in errors[0]
    assert len(search(min_level="warning", since=now - timedelta(days=3))) == 3
    assert search(min_level="error", since=now - timedelta(hours=1)) == []
    assert len(search(min_level="error", since=now - timedelta(days=3), account_id="acme")) == 1

    # Text in any of message, error type, error message, whatever its case.
    by_type = search(since=now - timedelta(days=7), search="smtprecipients", with_stack_trace=True)
    assert [row["run"] for row in by_type] == ["run-hook"]
    assert "550 user unknown" in str(by_type[0]["stack_trace"])
    assert [row["run"] for row in search(since=now - timedelta(days=7), search="OUT OF MEM")] == [
        "run-0-1"
    ]
    # LIKE wildcards in the text are literal.
    assert len(search(since=now - timedelta(days=7), search="100%")) == 1
    assert len(search(since=now - timedelta(days=7), search="quota_used")) == 1
    assert search(since=now - timedelta(days=7), search="quota%used") == []
    assert len(search(since=now - timedelta(days=7), limit=7)) == 7

    with pytest.raises(JobsError, match="say which logs"):
        search(min_level="error")


def _explain(store: Store, query: ev.LogQuery) -> str:
    sql, params = ev.log_search_sql(query)
    return "\n".join(str(row[0]) for row in store.query(f"EXPLAIN indexes = 1 {sql}", params).rows)


def _granules(plan: str, index: str) -> tuple[int, int]:
    """(selected, total) granules after the named skip index, from EXPLAIN indexes = 1."""
    found = re.search(rf"Name: {index}\n(?:.*\n)*?.*Granules: (\d+)/(\d+)", plan)
    assert found, f"{index} not used:\n{plan}"
    return int(found.group(1)), int(found.group(2))


def test_searches_are_answered_by_the_indexes(migrated_store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    write(migrated_store, _sample_logs(now))
    week = now - timedelta(days=7)

    # Text search: the n-gram index over message + error type + error message skips the
    # days that cannot contain the text (one granule per daily partition here).
    selected, total = _granules(
        _explain(migrated_store, ev.LogQuery(since=week, search="SMTPRecipients")), "idx_search"
    )
    assert total >= 4 and selected == 1
    selected, total = _granules(
        _explain(migrated_store, ev.LogQuery(since=week, search="out of memory")), "idx_search"
    )
    assert selected == 1

    # A run's story: the bloom filter on run_id.
    selected, total = _granules(_explain(migrated_store, ev.LogQuery(run_id="run-hook")), "idx_run")
    assert selected == 1 and total >= 4

    # A time window: daily partitions are pruned before any index is read.
    plan = _explain(migrated_store, ev.LogQuery(min_level="error", since=now - timedelta(hours=2)))
    pruned = re.search(r"Min-Max\n(?:.*\n)*?.*Parts: (\d+)/(\d+)", plan)
    assert pruned and int(pruned.group(1)) < 4, plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("2D", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_since_durations(text: str, expected: timedelta) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert ev.parse_since(text, now) == now - expected


def test_since_times_and_bad_input() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert ev.parse_since("2026-11-19T08:00:00", now) == datetime(2026, 11, 19, 8, tzinfo=UTC)
    assert ev.parse_since("2026-11-19T09:00:00+01:00", now) == datetime(2026, 11, 19, 8, tzinfo=UTC)
    with pytest.raises(JobsError, match="cannot read 'yesterday' as a time"):
        ev.parse_since("yesterday", now)
    assert ev.levels_from("warning") == ["warning", "error"]
    with pytest.raises(JobsError, match="unknown log level 'fatal'"):
        ev.levels_from("fatal")
