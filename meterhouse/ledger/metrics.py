"""Budget and balance gauges for Prometheus, refreshed in the background.

A scrape never waits for ClickHouse: a thread recomputes every budget's usage and every
account's balance each ``MH_LEDGER_METRICS_REFRESH_SECONDS`` and the collector serves the
last result. Labels are bounded by what operators configure: ``account`` (accounts),
``scope`` (account | team | project) and ``scope_id`` (the ids of configured budgets
only). Values are Decimal until here; Prometheus samples are floats, so this is the one
place amounts become floats, for display and alerting only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meterhouse.errors import MeterhouseError
from meterhouse.ledger.balance import Balance, all_balances
from meterhouse.ledger.budgets import BudgetStatus, budget_statuses
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)

BUDGET_LABELS = ("account", "scope", "scope_id")


@dataclass(frozen=True)
class LedgerSnapshot:
    statuses: Sequence[BudgetStatus] = ()
    balances: Sequence[Balance] = ()
    refreshed_at: float = 0.0
    ok: bool = False
    seconds: float = 0.0


class LedgerMetrics(Collector):
    """Collector of the ledger gauges; ``refresh`` recomputes them from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.snapshot = LedgerSnapshot()
        self._lock = threading.Lock()

    def refresh(self, at: datetime | None = None) -> bool:
        """Recompute; on failure keep the last values and report refresh_ok 0."""
        started = time.monotonic()
        try:
            statuses = budget_statuses(self.store, at)
            balances = list(all_balances(self.store, at).values())
        except Exception as exc:  # a background refresh reports, it never dies
            if isinstance(exc, MeterhouseError):
                log.warning("ledger metrics refresh failed", error=str(exc))
            else:
                log.exception("ledger metrics refresh failed")
            with self._lock:
                previous = self.snapshot
                self.snapshot = LedgerSnapshot(
                    previous.statuses,
                    previous.balances,
                    previous.refreshed_at,
                    ok=False,
                    seconds=time.monotonic() - started,
                )
            return False
        with self._lock:
            self.snapshot = LedgerSnapshot(
                statuses, balances, time.time(), ok=True, seconds=time.monotonic() - started
            )
        return True

    def describe(self) -> Iterable[Metric]:
        return _families(LedgerSnapshot())

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            snapshot = self.snapshot
        return _families(snapshot)


def _families(snapshot: LedgerSnapshot) -> list[Metric]:
    used = GaugeMetricFamily(
        "meterhouse_budget_used_ratio",
        "Credits used this month (account time zone) / budget amount.",
        labels=BUDGET_LABELS,
    )
    forecast = GaugeMetricFamily(
        "meterhouse_budget_forecast_ratio",
        "Month-end forecast at the month's run rate (used / elapsed fraction) / budget amount.",
        labels=BUDGET_LABELS,
    )
    amount = GaugeMetricFamily(
        "meterhouse_budget_amount_credits",
        "Budget amount of this month, in credits.",
        labels=BUDGET_LABELS,
    )
    balance = GaugeMetricFamily(
        "meterhouse_account_balance_credits",
        "Credit balance of the account now (granted - consumed - expired).",
        labels=("account",),
    )
    for status in snapshot.statuses:
        budget = status.budget
        labels = [budget.account_id, budget.scope, budget.scope_id]
        used.add_metric(labels, float(status.used_ratio))
        forecast.add_metric(labels, float(status.forecast_ratio))
        amount.add_metric(labels, float(budget.amount))
    for account in snapshot.balances:
        balance.add_metric([account.account_id], float(account.balance))
    ok = GaugeMetricFamily(
        "meterhouse_ledger_metrics_refresh_ok",
        "1 when the last refresh of the budget and balance gauges succeeded.",
        value=1.0 if snapshot.ok else 0.0,
    )
    refreshed = GaugeMetricFamily(
        "meterhouse_ledger_metrics_refreshed_timestamp_seconds",
        "Unix time the budget and balance gauges were last computed (0: not yet).",
        value=snapshot.refreshed_at,
    )
    duration = GaugeMetricFamily(
        "meterhouse_ledger_metrics_refresh_seconds",
        "How long the last refresh of the budget and balance gauges took.",
        value=snapshot.seconds,
    )
    return [used, forecast, amount, balance, ok, refreshed, duration]


class Refresher:
    """Calls ``LedgerMetrics.refresh`` now and then every ``interval`` seconds until stopped."""

    def __init__(self, metrics: LedgerMetrics, interval: float) -> None:
        self.metrics = metrics
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.metrics.refresh()
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
