"""rate -> rows -> spool (or write), for events that passed decode and validate.

``Ingestor.ingest`` runs in a worker thread. Rating and the column layout happen here
(meterhouse/processing/columns.py), once: with durability on (MH_INGEST_DURABILITY=spool, the
default) the priced rows are appended to the spool and the call returns when they are
fsynced; the spool's drainer writes them to ClickHouse later, in large batches, and a
replay after a crash writes the same rows, never re-pricing them. With ``direct`` the
rows are written to ClickHouse before the call returns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from collectors.metrics import IngestMetrics
from exporters.clickhouse_writer import ClickHouseWriter, WriteResult
from exporters.spool import Spool, SpoolError, SpoolFullError
from meterhouse import records as r
from meterhouse.errors import StoreError
from meterhouse.logs import get_logger
from meterhouse.meters.billing import BillableMeters
from meterhouse.processing.accounts import AccountDirectory, AccountInfo
from meterhouse.processing.columns import Built, ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store

log = get_logger(__name__)

ACCOUNT_CACHE_SECONDS = 30.0


class RatingFailedError(Exception):
    """The rater raised: the batch is refused (503, retryable), never stored unflagged."""


@dataclass
class IngestOutcome:
    ok: bool
    events: int
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    error: str = ""
    stage: str = ""  # "rate", "spool", "spool_full" or "write" when not ok


class LastKnownAccounts(AccountDirectory):
    """Account time zone and plan; while the store cannot be read, the last ones read.

    Acceptance must not depend on ClickHouse being up (the spool exists for that), but an
    event can only be priced with its account's plan: an account never seen before is
    refused (503) until the store answers again.
    """

    def __init__(self, store: Store, *, max_age_seconds: float | None = None) -> None:
        super().__init__(store, max_age_seconds=max_age_seconds)
        self._known: dict[str, AccountInfo] = {}
        self._known_lock = threading.Lock()

    def get(self, account_id: str) -> AccountInfo:
        try:
            info = super().get(account_id)
        except StoreError:
            with self._known_lock:
                known = self._known.get(account_id)
            if known is None:
                raise
            return known
        if info.exists:
            self._remember({account_id: info})
        return info

    def unknown(self, account_ids: Iterable[str]) -> set[str]:
        """As the store says; while it cannot be read, every account read before counts."""
        wanted = set(account_ids)
        try:
            missing = super().unknown(wanted)
        except StoreError:
            with self._known_lock:
                if wanted.issubset(self._known):
                    return set()
            raise
        self._remember({a: self._cache[a][0] for a in wanted - missing if a in self._cache})
        return missing

    def _remember(self, infos: dict[str, AccountInfo]) -> None:
        with self._known_lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known.update(infos)


class Ingestor:
    def __init__(
        self,
        store: Store,
        rater: Rater,
        metrics: IngestMetrics,
        *,
        spool: Spool | None = None,
        writer: ClickHouseWriter | None = None,
        meters: BillableMeters | None = None,
    ) -> None:
        self.accounts = LastKnownAccounts(store, max_age_seconds=ACCOUNT_CACHE_SECONDS)
        self.rater = rater
        self.writer = writer or ClickHouseWriter(store)
        self.metrics = metrics
        self.spool = spool
        self.meters = meters
        self._builders = threading.local()

    def _builder(self) -> ColumnBuilder:
        builder: ColumnBuilder | None = getattr(self._builders, "builder", None)
        if builder is None:
            builder = self._builders.builder = ColumnBuilder(self.accounts, self.rater, self.meters)
        return builder

    def rate(self, events: Sequence[r.Event]) -> Built:
        try:
            built = self._builder().build(events)
        except Exception as exc:  # the rater is pluggable: any failure refuses the batch
            log.exception("rating failed", events=len(events))
            self.metrics.rating_errors.inc()
            raise RatingFailedError(f"{type(exc).__name__}: {exc}") from exc
        for (kind, reason), count in built.unpriced.items():
            self.metrics.unpriced.labels(kind, reason).inc(count)
        return built

    def written(self, result: WriteResult) -> None:
        """Metrics of one write to ClickHouse (a request's in direct mode, else a drain's)."""
        self.metrics.insert_seconds.observe(result.seconds)
        if not result.ok:
            self.metrics.insert_errors.inc()
        for table, count in result.duplicates_by_table.items():
            self.metrics.duplicates.labels(table).inc(count)

    def ingest(self, events: Sequence[r.Event]) -> IngestOutcome:
        try:
            built = self.rate(events)
        except RatingFailedError as exc:
            return IngestOutcome(False, len(events), error=str(exc), stage="rate")
        if not built.tables:
            return IngestOutcome(True, len(events))  # no event, no row: nothing to keep
        if self.spool is not None:
            try:
                self.spool.append(built.tables, len(events))
            except SpoolFullError as exc:
                return IngestOutcome(False, len(events), error=str(exc), stage="spool_full")
            except (SpoolError, OSError) as exc:
                log.error("spool append failed", error=str(exc))
                return IngestOutcome(False, len(events), error=str(exc), stage="spool")
            return IngestOutcome(True, len(events))
        result = self.writer.write_tables(built.tables)
        self.written(result)
        if not result.ok:
            return IngestOutcome(False, len(events), error=result.error, stage="write")
        return IngestOutcome(
            True, len(events), written=result.written, duplicates=result.duplicates
        )
