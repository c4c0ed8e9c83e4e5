"""Store the generated demo: tenants first, then events the way ingest stores them
(rate -> columns -> ClickHouseWriter.write_tables)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse.access import tenants as t
from meterhouse.access.tenants import now_utc
from meterhouse.demo.access_seed import seed_access
from meterhouse.demo.generator import DemoData
from meterhouse.demo.ledger_seed import seed_ledger
from meterhouse.errors import MeterhouseError
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store

Progress = Callable[[str, int, int], None]
"""(step, done, total): called as long steps advance."""

BATCH = 20_000


@dataclass
class DemoSummary:
    accounts: int
    events: int
    rows: dict[str, int]
    duplicates: int


def store_tenants(store: Store, data: DemoData, actor: str) -> None:
    for tenant in data.tenants:
        fields = {
            "name": tenant.name,
            "organisation": tenant.organisation,
            "time_zone": tenant.time_zone,
            "plan": tenant.plan,
            "custom_instructions": tenant.custom_instructions,
        }
        if t.get_account(store, tenant.account_id) is None:
            t.create_account(store, tenant.account_id, actor=actor, **fields)
        for team_id, name in tenant.teams:
            if t.get_team(store, tenant.account_id, team_id) is None:
                t.upsert_team(store, tenant.account_id, team_id, name, actor=actor, create=True)
        for team_id, project_id, name in tenant.projects:
            if t.get_project(store, tenant.account_id, project_id) is None:
                t.upsert_project(
                    store,
                    tenant.account_id,
                    project_id,
                    team_id=team_id,
                    name=name,
                    actor=actor,
                    create=True,
                )
        now = now_utc()
        store.insert(
            "users",
            {
                "account_id": [tenant.account_id] * len(tenant.users),
                "user_id": [u[0] for u in tenant.users],
                "email": [u[1] for u in tenant.users],
                "name": [u[2] for u in tenant.users],
                "created_at": [now] * len(tenant.users),
                "updated_at": [now] * len(tenant.users),
            },
        )
    seed_access(store, data, actor)  # users of several roles (also for --via-api)


def store_events(store: Store, data: DemoData, rater: Rater, progress: Progress) -> DemoSummary:
    builder = ColumnBuilder(AccountDirectory(store), rater)
    writer = ClickHouseWriter(store)
    totals: dict[str, int] = {}
    duplicates = 0
    total = len(data.events)
    for start in range(0, total, BATCH):
        batch = data.events[start : start + BATCH]
        result = writer.write_tables(builder.build(batch).tables)
        if not result.ok:
            raise MeterhouseError(f"demo could not store events: {result.error}")
        duplicates += result.duplicates
        for table, count in result.written.items():
            totals[table] = totals.get(table, 0) + count
        progress("storing events", min(start + BATCH, total), total)
    return DemoSummary(len(data.tenants), total, totals, duplicates)


def run_demo(
    store: Store, data: DemoData, rater: Rater, *, actor: str, progress: Progress
) -> DemoSummary:
    progress("creating accounts, teams and projects", 0, len(data.tenants))
    store_tenants(store, data, actor)
    progress("creating accounts, teams and projects", len(data.tenants), len(data.tenants))
    summary = store_events(store, data, rater, progress)
    seed_ledger(store, data, actor)  # grants and budgets, after the usage they are sized on
    return summary
