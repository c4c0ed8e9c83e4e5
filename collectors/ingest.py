"""rate -> batch -> write, for events that passed decode and validate.

``Ingestor.ingest`` runs in a worker thread: rating may read the store (account time
zones and plans), and the write holds the writer's lock, so the ClickHouseWriter stays
the single writer of the store. The two halves are separate methods because the durable
segment log (a later issue) goes between them: ``rate`` produces the rows it will
append, ``write`` is what its replay calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from collectors.metrics import IngestMetrics
from exporters.clickhouse_writer import ClickHouseWriter, WriteResult
from meterhouse import records as r
from meterhouse.logs import get_logger
from meterhouse.processing.pipeline import Pipeline, Rater
from meterhouse.processing.rows import TableRows
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
    stage: str = ""  # "rate" or "write" when not ok


def unique_events(events: Iterable[r.Event]) -> tuple[list[r.Event], int]:
    """First delivery of each (source, id) in the batch; and how many repeats were dropped."""
    seen: set[tuple[str, str]] = set()
    kept: list[r.Event] = []
    repeats = 0
    for event in events:
        key = (event.source, event.id)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        kept.append(event)
    return kept, repeats


class Ingestor:
    def __init__(self, store: Store, rater: Rater, metrics: IngestMetrics) -> None:
        self.pipeline = Pipeline(store, rater, account_cache_seconds=ACCOUNT_CACHE_SECONDS)
        self.writer = ClickHouseWriter(store)
        self.metrics = metrics

    def rate(self, events: list[r.Event]) -> TableRows:
        try:
            return self.pipeline.rows(events)
        except Exception as exc:  # the rater is pluggable: any failure refuses the batch
            log.exception("rating failed", events=len(events))
            self.metrics.rating_errors.inc()
            raise RatingFailedError(f"{type(exc).__name__}: {exc}") from exc

    def write(self, rows: TableRows) -> WriteResult:
        with self.metrics.insert_seconds.time():
            result = self.writer.write(rows)
        if not result.ok:
            self.metrics.insert_errors.inc()
        for table, count in result.duplicates_by_table.items():
            self.metrics.duplicates.labels(table).inc(count)
        return result

    def ingest(self, events: list[r.Event]) -> IngestOutcome:
        unique, repeats = unique_events(events)
        try:
            rows = self.rate(unique)
        except RatingFailedError as exc:
            return IngestOutcome(False, len(events), error=str(exc), stage="rate")
        result = self.write(rows)
        if not result.ok:
            return IngestOutcome(False, len(events), error=result.error, stage="write")
        return IngestOutcome(
            True, len(events), written=result.written, duplicates=result.duplicates + repeats
        )
