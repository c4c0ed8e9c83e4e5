"""Per-account overview for this month in the account's time zone (demo and CLI)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterhouse.access.tenants import list_accounts
from meterhouse.store.base import Store

_USAGE = """
SELECT
    sumIf(credits, local_date >= {this_month:Date}) AS credits_this_month,
    sumIf(usd, local_date >= {this_month:Date}) AS usd_this_month,
    sumIf(credits, local_date >= {last_month:Date} AND local_date < {this_month:Date}
          AND toDayOfMonth(local_date) <= {day:UInt8}) AS credits_last_month_to_date,
    sumIf(quantity, kind = 'job' AND usage_type = 'compute_seconds'
          AND local_date >= {this_month:Date}) AS job_seconds_this_month,
    sumIf(events, kind = 'model' AND usage_type = 'output'
          AND local_date >= {this_month:Date}) AS model_calls_this_month
FROM usage_daily
WHERE account_id = {account:String} AND local_date >= {last_month:Date}
"""

_TOP_MODEL = """
SELECT item, sum(credits) AS c FROM usage_daily
WHERE account_id = {account:String} AND kind = 'model' AND local_date >= {this_month:Date}
GROUP BY item ORDER BY c DESC LIMIT 1
"""

_RUNS = """
SELECT
    countIf(status IN ('failed', 'timed_out') AND finished_at >= {month_start:DateTime64(3, 'UTC')})
        AS failed_runs_this_month,
    countIf(status = 'running') AS running_now
FROM job_runs_current WHERE account_id = {account:String}
"""

_UNPRICED = """
SELECT count() FROM usage_events
WHERE account_id = {account:String} AND priced = 0
  AND event_time >= {month_start:DateTime64(3, 'UTC')}
"""


def account_overview(store: Store, now: datetime) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for account in list_accounts(store):
        local_now = now.astimezone(ZoneInfo(account["time_zone"]))
        this_month = local_now.date().replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        month_start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        params = {
            "account": account["account_id"],
            "this_month": this_month,
            "last_month": last_month,
            "day": local_now.day,
            "month_start": month_start,
        }
        usage = next(store.query(_USAGE, params).dicts())
        runs = next(store.query(_RUNS, params).dicts())
        top = store.query(_TOP_MODEL, params).rows
        this, last = usage["credits_this_month"], usage["credits_last_month_to_date"]
        change = f"{(this - last) / last * 100:+.1f}%" if last else "n/a"
        rows.append(
            {
                "account": account["account_id"],
                "plan": account["plan"],
                "time_zone": account["time_zone"],
                "credits_this_month": round(this, 2),
                "vs_last_month": change,
                "usd_this_month": round(usage["usd_this_month"], 2),
                "job_hours": round(usage["job_seconds_this_month"] / 3600, 1),
                "model_calls": usage["model_calls_this_month"],
                "top_model": top[0][0] if top else "",
                "failed_runs": runs["failed_runs_this_month"],
                "running_now": runs["running_now"],
                "unpriced_events": store.query(_UNPRICED, params).scalar(),
            }
        )
    return rows


def credits_overview(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Balance with its parts, and each budget's use and month-end forecast."""
    from meterhouse.ledger.balance import all_balances
    from meterhouse.ledger.budgets import budget_statuses

    statuses: dict[str, list[str]] = {}
    for status in budget_statuses(store, now):
        budget = status.budget
        scope = "account" if budget.scope == "account" else f"{budget.scope} {budget.scope_id}"
        crossed = f", crossed {status.crossed[-1]}%" if status.crossed else ""
        statuses.setdefault(budget.account_id, []).append(
            f"{scope}: {status.used_ratio * 100:.0f}% used, "
            f"forecast {status.forecast_ratio * 100:.0f}%{crossed}"
        )
    rows: list[dict[str, Any]] = []
    for account_id, balance in sorted(all_balances(store, now).items()):
        rows.append(
            {
                "account": account_id,
                "balance": round(balance.balance, 2),
                "granted": round(balance.granted, 2),
                "consumed": round(balance.consumed, 2),
                "expired": round(balance.expired, 2),
                "budgets": "; ".join(statuses.get(account_id, [])) or "-",
            }
        )
    return rows
