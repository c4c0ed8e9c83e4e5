"""The dashboards' rollups equal a recount from raw rows: on the demo, after a replayed
batch, after reprice; and the panels that read them answer what reading every event would.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse import records as r
from meterhouse.dashboards import jobs, usage
from meterhouse.dashboards import sql as dashboard_sql
from meterhouse.dashboards.macros import ALL, QueryContext, Variable, expand
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.catalog import Catalog
from meterhouse.rating.price_book import PriceBook
from meterhouse.rating.rater import Rater
from meterhouse.rating.reprice import reprice
from meterhouse.rating.rollups import USAGE_ROLLUPS
from meterhouse.store.base import Store
from tests.dashboards.engine import END, INTERVAL, START, load_demo

# The Statement and Totals as they were before the rollups: every event of the range.
RAW_STATEMENT = """SELECT
    kind, item, lines.usage_type AS usage_type, lines.unit AS unit,
    sum(lines.quantity), lines.unit_price_credits AS pc, lines.unit_price_usd AS pu,
    sum(lines.credits) AS credits, sum(lines.usd), uniqExact(event_id),
    min(event_time), max(event_time)
FROM usage_events
ARRAY JOIN lines
WHERE account_id = ${account:singlequote} AND $__timeFilter(event_time)
GROUP BY kind, item, usage_type, unit, pc, pu
ORDER BY credits DESC, kind, item, usage_type
"""
RAW_TOTALS = """SELECT sum(credits), sum(usd), count(), countIf(priced = 0)
FROM usage_events
WHERE account_id = ${account:singlequote} AND $__timeFilter(event_time)
"""


def recount_differences(store: Store) -> list[str]:
    """Every key of every usage rollup against a fresh aggregation of all usage_events."""
    problems: list[str] = []
    for rollup in USAGE_ROLLUPS:
        width = len(rollup.key)
        have = {row[:width]: row[width:] for row in store.query(rollup.read("1")).rows}
        want = {
            row[:width]: row[width:] for row in store.query(rollup.select.format(range="1")).rows
        }
        assert want, f"{rollup.table}: the recount found no rows"
        problems += [
            f"{rollup.table} {key}: stored {have.get(key)}, recounted {want.get(key)}"
            for key in sorted(have.keys() | want.keys(), key=str)
            if have.get(key) != want.get(key)
        ]
    return problems


def _ctx(account: str, time_from: datetime, time_to: datetime) -> QueryContext:
    variables = {
        "account": Variable("account", account),
        "team": Variable("team", [ALL]),
        "project": Variable("project", [ALL]),
        "kind": Variable("kind", [ALL]),
        "item": Variable("item", [ALL]),
    }
    return QueryContext(time_from, time_to, INTERVAL, variables)


RANGES = (
    (START, END),  # whole hours only
    (START + timedelta(minutes=17, seconds=13), END - timedelta(minutes=5, seconds=1)),
    (END - timedelta(hours=3, minutes=40), END - timedelta(hours=3, minutes=2)),  # one hour
    (END - timedelta(days=2, seconds=1), END - timedelta(hours=1)),
)


def test_statement_and_totals_equal_reading_every_event(migrated_store: Store) -> None:
    store = migrated_store
    data = load_demo(store, scale=0.25)
    compared = 0
    for tenant in data.tenants:
        for time_from, time_to in RANGES:
            ctx = _ctx(tenant.account_id, time_from, time_to)
            statement = store.query(expand(usage.STATEMENT_SQL, ctx)).rows
            assert statement == store.query(expand(RAW_STATEMENT, ctx)).rows, (time_from, time_to)
            totals = store.query(expand(usage.TOTALS_SQL, ctx)).rows
            raw = store.query(expand(RAW_TOTALS, ctx)).rows
            # sum() over no rows: 0 either way, whichever side had rows
            assert [tuple(v or 0 for v in row) for row in totals] == [
                tuple(v or 0 for v in row) for row in raw
            ]
            compared += len(statement)
    assert compared > 100


def test_rollups_equal_a_recount_after_replay_and_reprice(migrated_store: Store) -> None:
    store = migrated_store
    data = load_demo(store, scale=0.25)
    assert not recount_differences(store)

    # A drain batch written, then replayed under its token (the spool's replay): the
    # engine drops the second copy in the table and in every view's target.
    late = [
        r.Event(
            id=f"late-{n}",
            source="test.replay",
            type=event.type,
            time=event.time,
            data=event.data,
            account_id=event.account_id,
        )
        for n, event in enumerate(e for e in data.events if e.type in (r.MODEL_CALL, r.API_CALL))
        if n < 300
    ]
    tables = ColumnBuilder(AccountDirectory(store), Rater.default()).build(late).tables
    writer = ClickHouseWriter(store)
    first = writer.write_tables(tables, token="batch-late")
    again = writer.write_tables(tables, token="batch-late")
    assert first.ok and again.ok
    assert first.written.get("usage_events", 0) > 0
    assert not again.written.get("usage_events")
    assert not recount_differences(store)

    # Reprice with other prices: rows replaced, every rollup rebuilt for the range.
    shipped = Path(PriceBook.load().source).read_text(encoding="utf-8")
    book = PriceBook.parse(
        shipped.replace('version = "', 'version = "test-').replace(
            'credits_per_usd = "110"', 'credits_per_usd = "140"'
        ),
        source="test",
    )
    account = "acme"
    result = reprice(
        store,
        account,
        date(2026, 11, 2),
        date(2026, 11, 5),
        actor="test",
        rater=Rater(Catalog.load(), book),
    )
    assert result.repriced > 0 and result.credits_after > result.credits_before
    assert result.daily_was_exact
    assert not recount_differences(store)

    # A rollup off by one cent is found by reprice's own check and rebuilt.
    store.command(
        "INSERT INTO usage_events_hourly (account_id, hour, local_date, kind, item, team_id, "
        "project_id, credits, usd, events, unpriced_events) VALUES "
        "('acme', '2026-11-03 10:00:00', '2026-11-03', 'model', 'gpt-4o', '', '', 0.01, 0, 0, 0)"
    )
    assert recount_differences(store)
    repaired = reprice(store, account, date(2026, 11, 2), date(2026, 11, 5), actor="test")
    assert not repaired.daily_was_exact
    assert not recount_differences(store)
    assert Decimal(0) < result.credits_after


# The run panels pre-filter runs by their events; the view they replace reads all runs.
ALL_OPEN_RUNS = """(
    SELECT account_id, run_id, team_id, project_id, CAST(job_id AS String) AS job_id,
        CAST(kind AS String) AS kind, started_at, status
    FROM job_runs_current
    WHERE status IN ('queued', 'running')
)"""


def _through_the_view(sql: str) -> str:
    for events in (
        jobs.FINISHED_IN_RANGE,
        jobs.FAILED_IN_RANGE,
        jobs.SUCCEEDED_OF_RUNNING_JOBS,
    ):
        sql = sql.replace(dashboard_sql.runs(events), "job_runs_current")
    return sql.replace(dashboard_sql.OPEN_RUNS, ALL_OPEN_RUNS)


def test_run_panels_equal_reading_every_run(migrated_store: Store) -> None:
    store = migrated_store
    data = load_demo(store, scale=0.25)
    panels = {
        "runs": jobs.RUNS_NOW_SQL,
        "duration": jobs.DURATION_SQL,
        "stuck": jobs.STUCK_SQL,
        "failed": jobs.FAILED_SQL,
    }
    found: dict[str, int] = dict.fromkeys(panels, 0)
    for tenant in data.tenants:
        for time_from, time_to in RANGES:
            ctx = _ctx(tenant.account_id, time_from, time_to)
            ctx.variables = {
                **ctx.variables,
                "job_kind": Variable("job_kind", [ALL]),
                "tz": Variable("tz", tenant.time_zone),
            }
            for name, sql in panels.items():
                reference = _through_the_view(sql)
                assert reference != sql, f"{name}: no pre-filter found to replace"
                got = store.query(expand(sql, ctx)).rows
                assert got == store.query(expand(reference, ctx)).rows, (name, time_from)
                found[name] += sum(1 for row in got if any(v not in (0, None) for v in row))
    assert all(found.values()), found
