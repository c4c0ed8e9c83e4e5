"""Sync passes: incremental (Stripe's Events API since a cursor) and full (every object).

Incremental: list the events created since the stored cursor (minus a small overlap for
events Stripe makes visible late), skip the ids already applied, apply the rest oldest
first in chunks, and move the cursor after each chunk, so a pass that stops half way
resumes where it stopped. Requests grow with the number of changes, not of customers.

Full: list products, prices, customers, subscriptions (status=all) and invoices page by
page, then every live customer's balance transactions, writing each page at
one snapshot version just below the second the pass started; progress is stored per page,
so a full pass that stops resumes at its stage and page. At the end, rows the pass did not
write are tombstoned (Stripe no longer has them) and the events cursor moves to the
snapshot start. Events after that start always win over the snapshot.

After either pass: plan allowances due are granted, then the reconciliation runs.
Passes never overlap (a lock; a second caller is told it was skipped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import stripe

from billing_sync.allowances import grant_allowances
from billing_sync.apply import Applier, ApplyResult, event_versions
from billing_sync.client import BillingError
from billing_sync.mirror import DELETABLE, sweep_unseen
from billing_sync.reconcile import ReconcileReport, reconcile
from billing_sync.source import LIST_KINDS, StripeSource
from billing_sync.state import (
    EVENTS_CURSOR,
    FULL_PASS,
    SyncState,
    applied_event_ids,
    load_state,
    record_applied,
    save_state,
)
from billing_sync.views import load_view
from meterhouse.access.tenants import now_utc
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)

EVENT_OVERLAP_SECONDS: Final = 300
# Stripe keeps events for 30 days; an older cursor cannot be caught up from events.
EVENT_RETENTION: Final = timedelta(days=29)
# A stopped full pass is resumed when younger than this, else started again.
FULL_RESUME_WITHIN: Final = timedelta(hours=12)
CHUNK: Final = 100
FULL_STAGES: Final = (*LIST_KINDS, "balance_transaction")
DONE: Final = "done"


class SyncStopped(BillingError):
    """The pass was asked to stop (service shutdown); its progress is stored."""


@dataclass
class PassReport:
    kind: str  # incremental | full | skipped
    started_at: datetime
    seconds: float = 0.0
    events_listed: int = 0
    events_applied: int = 0
    events_ignored: int = 0
    objects: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    tombstoned: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    grants_created: int = 0
    issues: ReconcileReport | None = None
    note: str = ""

    def absorb(self, result: ApplyResult) -> None:
        for kind, n in result.objects.items():
            self.objects[kind] = self.objects.get(kind, 0) + n
        for table, n in result.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n
        self.events_ignored += result.ignored_events

    def summary(self) -> list[dict[str, Any]]:
        """(what, count) rows for people."""
        rows: list[dict[str, Any]] = [{"what": "pass", "value": self.kind}]
        if self.note:
            rows.append({"what": "note", "value": self.note})
        if self.kind == "skipped":
            return rows
        rows.append({"what": "seconds", "value": round(self.seconds, 2)})
        if self.kind == "incremental":
            rows.append({"what": "events listed", "value": self.events_listed})
            rows.append({"what": "events applied", "value": self.events_applied})
        rows += [{"what": f"{k} objects", "value": n} for k, n in sorted(self.objects.items())]
        rows += [{"what": f"{t} deleted", "value": n} for t, n in sorted(self.tombstoned.items())]
        rows.append({"what": "allowance grants created", "value": self.grants_created})
        if self.issues is not None:
            rows += [
                {"what": f"open issues: {kind}", "value": n}
                for kind, n in sorted(self.issues.open_by_kind.items())
                if n
            ]
            rows.append({"what": "issues resolved now", "value": self.issues.resolved})
        return rows


class BillingSync:
    """Runs passes against one store and one Stripe source; safe to share between threads."""

    def __init__(
        self,
        store: Store,
        source: StripeSource,
        *,
        actor: str = "billing-sync",
        clock: Callable[[], datetime] = now_utc,
        stop: threading.Event | None = None,
        grant_allowances: bool = True,
        overlap_seconds: int = EVENT_OVERLAP_SECONDS,
    ) -> None:
        self.store = store
        self.source = source
        self.actor = actor
        self.clock = clock
        self.stop = stop or threading.Event()
        self.grant = grant_allowances
        self.overlap_seconds = overlap_seconds
        self.applier = Applier(store, source)
        self._lock = threading.Lock()

    # -- entry points ----------------------------------------------------------------------

    def run(self, *, full: bool = False) -> PassReport:
        """One pass (full when asked or when events cannot catch up), then grants and checks."""
        started = self.clock()
        with self.exclusive() as got:
            if not got:
                return PassReport("skipped", started, note="another billing sync pass is running")
            began = time.monotonic()
            reason = "asked for" if full else self._full_needed(started)
            report = self._full(started, reason) if reason else self._incremental(started)
            self.after_mirror(report)
            report.seconds = time.monotonic() - began
            self._record_success(report)
            return report

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold the pass lock if it is free; yields whether it was taken."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    def after_mirror(self, report: PassReport) -> None:
        """Grant due allowances and reconcile, from the mirror as it is now."""
        now = self.clock()
        view = load_view(self.store)
        if self.grant:
            report.grants_created = grant_allowances(self.store, view, now, self.actor)
        report.issues = reconcile(self.store, now, view)

    # -- incremental -----------------------------------------------------------------------

    def _full_needed(self, now: datetime) -> str:
        progress = load_state(self.store, FULL_PASS).cursor
        if progress.get("stage") in FULL_STAGES:
            return "resuming a full pass that stopped"
        created = load_state(self.store, EVENTS_CURSOR).cursor.get("created")
        if created is None:
            return "no events cursor yet (first sync)"
        if now - datetime.fromtimestamp(int(created), tz=now.tzinfo) > EVENT_RETENTION:
            return "events cursor is older than Stripe keeps events"
        return ""

    def _incremental(self, started: datetime) -> PassReport:
        report = PassReport("incremental", started)
        state = load_state(self.store, EVENTS_CURSOR)
        cursor = int(state.cursor["created"])
        events = self.source.events_since(max(0, cursor - self.overlap_seconds))
        report.events_listed = len(events)
        done = applied_event_ids(self.store, [str(e["id"]) for e in events])
        # Versions are ranked over everything listed, applied or not, so a re-listed second
        # ranks its events the same way every pass.
        ranked = [(e, v) for e, v in zip(events, event_versions(events), strict=True)]
        todo = [(e, v) for e, v in ranked if str(e["id"]) not in done]
        for start in range(0, len(todo), CHUNK):
            self._check_stop()
            chunk = [e for e, _ in todo[start : start + CHUNK]]
            versions = [v for _, v in todo[start : start + CHUNK]]
            report.absorb(self.applier.events(chunk, versions))
            record_applied(self.store, chunk, "sync")
            report.events_applied += len(chunk)
            cursor = max(cursor, *(int(e.get("created") or 0) for e in chunk))
            state.cursor = {"created": cursor}
            save_state(self.store, state)
        # Everything older than the overlap before this pass's start has been seen, events
        # or not: moving the cursor keeps a quiet account from ageing past Stripe's 30 days.
        floor = int(started.timestamp()) - self.overlap_seconds
        if floor > cursor:
            state.cursor = {"created": floor}
            save_state(self.store, state)
        return report

    # -- full ------------------------------------------------------------------------------

    def _full(self, started: datetime, reason: str) -> PassReport:
        report = PassReport("full", started, note=reason)
        progress = load_state(self.store, FULL_PASS)
        stage, after, snapshot = FULL_STAGES[0], "", int(started.timestamp())
        saved = progress.cursor
        if (
            saved.get("stage") in FULL_STAGES
            and isinstance(saved.get("snapshot"), int)
            and started.timestamp() - saved["snapshot"] < FULL_RESUME_WITHIN.total_seconds()
        ):
            stage, after, snapshot = (
                saved["stage"],
                str(saved.get("after") or ""),
                saved["snapshot"],
            )
            report.resumed = True
            log.info("resuming full billing sync", stage=stage, after=after)
        # Just below the start second: an event of that second or later wins over the snapshot.
        version = snapshot * 1000 - 1
        for name in FULL_STAGES[FULL_STAGES.index(stage) :]:
            self._full_stage(name, after, snapshot, version, progress, report)
            after = ""
        for table in DELETABLE:
            swept = sweep_unseen(self.store, table, version)
            if swept:
                report.tombstoned[table.name] = swept
        events = load_state(self.store, EVENTS_CURSOR)
        events.cursor = {"created": max(int(events.cursor.get("created") or 0), snapshot)}
        save_state(self.store, events)
        progress.cursor = {"stage": DONE, "snapshot": snapshot}
        save_state(self.store, progress)
        return report

    def _full_stage(
        self,
        name: str,
        after: str,
        snapshot: int,
        version: int,
        progress: SyncState,
        report: PassReport,
    ) -> None:
        def mark(last_id: str) -> None:
            progress.cursor = {"stage": name, "after": last_id, "snapshot": snapshot}
            save_state(self.store, progress)

        mark(after)
        if name == "balance_transaction":
            for customers in self._live_customers(after):
                self._check_stop()
                result = ApplyResult()
                self.applier.balance_transactions(customers, result)
                report.absorb(result)
                mark(customers[-1])
            return
        try:
            self._list_stage(name, after, version, report, mark)
        except BillingError as exc:
            if not after or not isinstance(exc.__cause__, stripe.InvalidRequestError):
                raise
            # The object to resume after is gone (deleted meanwhile): list the stage again.
            log.warning(
                "cannot resume the list after its last object; listing it again",
                stage=name,
                after=after,
                error=str(exc),
            )
            self._list_stage(name, "", version, report, mark)

    def _list_stage(
        self,
        name: str,
        after: str,
        version: int,
        report: PassReport,
        mark: Callable[[str], None],
    ) -> None:
        for page in self.source.pages(name, starting_after=after):
            self._check_stop()
            result = ApplyResult()
            self.applier.objects(name, page, version, tombstone_children=False, result=result)
            report.absorb(result)
            mark(str(page[-1]["id"]))

    def _live_customers(self, after: str) -> Iterator[list[str]]:
        rows = self.store.query(
            "SELECT customer_id FROM stripe_customers FINAL "
            "WHERE deleted = 0 AND customer_id > {after:String} ORDER BY customer_id",
            {"after": after},
        ).rows
        ids = [str(row[0]) for row in rows]
        for start in range(0, len(ids), CHUNK):
            yield ids[start : start + CHUNK]

    # -- bookkeeping -----------------------------------------------------------------------

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise SyncStopped("billing sync stopped on request; the next pass resumes from here")

    def _record_success(self, report: PassReport) -> None:
        name = FULL_PASS if report.kind == "full" else EVENTS_CURSOR
        state = load_state(self.store, name)
        state.last_success_at = self.clock()
        state.last_duration_ms = int(report.seconds * 1000)
        save_state(self.store, state)


def last_successes(store: Store) -> dict[str, SyncState]:
    """The stored state of both passes, by pass kind."""
    return {
        "incremental": load_state(store, EVENTS_CURSOR),
        "full": load_state(store, FULL_PASS),
    }
