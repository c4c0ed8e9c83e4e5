"""The spool: accepted batches are made durable locally, then drained into ClickHouse.

``Spool.append`` is what an ingest request waits for before it answers 2xx: the batch's
priced rows are in the segment log and fsynced (group commit). A drainer thread reads the
log in order, coalesces many requests into large inserts (one per table), and after each
successful insert records a checkpoint (fsynced) and deletes the segments it has passed.

Exactly once: each drain batch has a name (its token: the spool's id and the batch's
bounds in the log) that is written to the ``inflight`` file, fsynced, before its first
insert. A crash between an insert and its checkpoint replays that very batch at the next
start, the same records under the same token, so the writer's claims and ClickHouse's
block deduplication drop what was stored and write what was missing, in every table and
view (exporters/clickhouse_writer.py).

When ClickHouse fails, the drainer retries the same batch with backoff, and requests keep
being accepted until the spool holds ``max_bytes``; then appends raise SpoolFullError
(the ingest endpoints answer 503 with Retry-After) until the drain catches up.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pyarrow as pa
from prometheus_client import CollectorRegistry

from exporters.clickhouse_writer import ClickHouseWriter, WriteResult
from exporters.spool import codec
from exporters.spool.inflight import Inflight, InflightFile
from exporters.spool.log import Position, Record, SegmentLog, SpoolError, SpoolFullError
from exporters.spool.metrics import SpoolMetrics
from exporters.spool.quarantine import DEAD_LETTER, KeptFolder, fsync_dir
from meterhouse.errors import StoreError
from meterhouse.logs import get_logger

log = get_logger(__name__)

LINGER_SECONDS: Final = 0.05  # a small batch waits this long for company
READ_BYTES: Final = 256 * 1024 * 1024  # most bytes of records read for one drain batch
PACE_MAX_SECONDS: Final = 2.0  # longest a request waits so (then it is spooled anyway)
RELEASE_EVERY_SECONDS: Final = 5.0  # at most this often the store frees its cached memory
BACKOFF_FIRST: Final = 0.2
BACKOFF_MAX: Final = 10.0
SPOOL_ID_FILE: Final = "spool-id"
# ClickHouse errors about the rows themselves, not the store's health: retrying the same
# rows cannot succeed, so a record refused so (alone, DEAD_LETTER_TRIES times) goes to the
# dead-letter folder instead of blocking the drain for ever.
PERMANENT_CODES: Final = frozenset(
    {6, 8, 10, 16, 20, 27, 36, 41, 43, 44, 53, 60, 69, 70, 72, 117, 131, 321, 407, 473}
)
DEAD_LETTER_TRIES: Final = 3


class _Refused:
    """The store refused a drain batch (see Spool._drain_once)."""


REFUSED: Final = _Refused()


@dataclass(frozen=True)
class Faults:
    """Test-only fault injection, to stop the drainer at chosen moments. No setting turns
    it on: tests pass it to ``Spool`` (tests/support/faulty_run.py for `meterhouse run`).

    ``hold_drain``: the drainer drains nothing; ``pause_before_checkpoint``: seconds it
    waits between a successful insert and the checkpoint that records it.
    """

    hold_drain: bool = False
    pause_before_checkpoint: float = 0.0


@dataclass
class _Batch:
    start: Position
    end: Position = field(default_factory=lambda: Position(0, 0))
    parts: dict[str, list[pa.Table]] = field(default_factory=dict)
    rows: int = 0
    events: int = 0
    records: int = 0
    oldest_ms: int = 0

    def add(self, batch: codec.SpoolBatch, end: Position) -> None:
        if not self.oldest_ms:
            self.oldest_ms = batch.created_ms
        for name, table in batch.tables.items():
            self.parts.setdefault(name, []).append(table)
        self.rows += batch.rows
        self.events += batch.events
        self.records += 1
        self.end = end

    def skip(self, end: Position) -> None:
        """Pass over a record that was quarantined instead of drained."""
        self.records += 1
        self.end = end

    def tables(self) -> dict[str, pa.Table]:
        return {
            name: parts[0] if len(parts) == 1 else pa.concat_tables(parts)
            for name, parts in self.parts.items()
        }


class Spool:
    def __init__(
        self,
        directory: Path,
        writer: ClickHouseWriter,
        registry: CollectorRegistry,
        *,
        max_bytes: int,
        segment_bytes: int = 64 * 1024 * 1024,
        batch_rows: int = 100_000,
        pace_bytes: int = 8 * 1024 * 1024,
        faults: Faults | None = None,
        on_written: Callable[[WriteResult], None] | None = None,
        clock: Callable[[], float] = time.time,
        drain_warning_seconds: float = 30.0,
    ) -> None:
        # Before the log: opening it may quarantine a damaged end, which is counted.
        self.dead_letters = KeptFolder(directory, DEAD_LETTER)
        self.metrics = SpoolMetrics(
            registry,
            pending_bytes=lambda: float(self.log.pending_bytes()),
            segments=lambda: float(self.log.segments()),
            oldest_age=self.oldest_age_seconds,
            kept=lambda: float(self.log.quarantine.count() + self.dead_letters.count()),
        )
        self.log = SegmentLog(
            directory,
            max_bytes=max_bytes,
            segment_bytes=segment_bytes,
            head_check=codec.plausible_head,
            on_quarantine=lambda _: self.metrics.quarantined.inc(),
        )
        self.writer = writer
        self.batch_rows = batch_rows
        self.pace_bytes = pace_bytes  # backlog past which requests wait for a healthy drain
        self.faults = faults or Faults()
        self.on_written = on_written
        self.clock = clock
        self._oldest_ms: int | None = None
        self._state = threading.Lock()
        self._refused_full = False
        self._refused_bytes = 0  # size of the last record refused for lack of room
        self._failing = False  # the last drain attempt failed
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._drained = threading.Condition()
        self.spool_id = _spool_id(directory)
        self.inflight = InflightFile(directory)
        self._attempt: Inflight | None = None  # the batch the last write attempt was for
        self._released = 0.0
        self._isolate_until: Position | None = None  # drain one record at a time up to here
        self._narrowing = False  # the next attempt is a new, smaller batch, not a retry
        self._permanent_tries = 0
        self._failing_since = 0.0
        self.drain_warning_seconds = drain_warning_seconds
        self._last_error = ""
        self._oldest_ms = self._peek_created(self.log.checkpoint)

    # -- the request side ------------------------------------------------------------

    def append(self, tables: Mapping[str, pa.Table], events: int) -> None:
        """Make one accepted batch durable; returns once it is on disk.

        Raises SpoolFullError (answer 503) when the spool is full, SpoolError when it is
        closed or the disk fails.
        """
        self._pace()
        now_ms = int(self.clock() * 1000)
        payload = codec.encode(tables, events, now_ms)
        try:
            written = self.log.write(payload)
        except SpoolFullError:
            self._refused_full = True
            self._refused_bytes = len(payload)
            self.metrics.refused.inc()
            raise
        except SpoolError:
            self.metrics.disk_errors.inc()
            raise
        self._refused_full = False
        with self._state:
            if self._oldest_ms is None:
                self._oldest_ms = now_ms
        try:
            self.log.sync(written.end, generation=written.generation)
        except SpoolError:
            self.metrics.disk_errors.inc()
            raise

    def _pace(self) -> None:
        """While the drain works, keep the backlog under ``pace_bytes``: a request waits (up to
        PACE_MAX_SECONDS) for the drainer to catch up, instead of spooling far ahead of
        it. Acknowledged events then become visible within about a second under any
        load, and the drainer's inserts get the CPU they need. While ClickHouse fails the
        spool takes everything, up to its limit: that is what it is for."""
        if not self.pace_bytes or self._thread is None or self._failing or self._stop.is_set():
            return
        deadline = time.monotonic() + PACE_MAX_SECONDS
        with self._drained:
            while self.log.pending_bytes() > self.pace_bytes and not self._failing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._drained.wait(min(left, 0.05))

    def full_reason(self) -> str | None:
        """A /readyz check: the reason whenever an append would be refused now (a disk
        fault, a closed spool, or no room for a batch like the last one refused)."""
        fault = self.log.health()
        if fault is not None:
            return fault
        pending = self.log.pending_bytes()
        # A batch larger than the whole spool is that request's problem, not the spool's.
        refused = self._refused_bytes if self._refused_bytes <= self.log.max_bytes else 0
        if self._refused_full and (
            pending + refused > self.log.max_bytes or pending > 0.9 * self.log.max_bytes
        ):
            return (
                f"ingest spool full: {pending} of {self.log.max_bytes} bytes wait for "
                f"ClickHouse, and a batch of {self._refused_bytes} bytes was refused"
            )
        self._refused_full = False
        return None

    def drain_warning(self) -> str | None:
        """For /readyz (a warning, not a refusal: the spool takes batches meanwhile): the
        drain has failed for a while, so acknowledged events are not reaching ClickHouse."""
        if not self._failing or not self._failing_since:
            return None
        failing_for = time.monotonic() - self._failing_since
        if failing_for < self.drain_warning_seconds:
            return None
        return (
            f"spool drain failing for {failing_for:.0f} s ({self.log.pending_bytes()} bytes "
            f"wait): {self._last_error}"
        )

    def oldest_age_seconds(self) -> float:
        oldest = self._oldest_ms
        return max(0.0, self.clock() - oldest / 1000) if oldest is not None else 0.0

    # -- the drainer -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain what is spooled (up to ``timeout`` seconds), then close the log.

        What is left (ClickHouse down, or too much to drain in time) stays on disk and is
        replayed at the next start.
        """
        self._stop_deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        self.log.close()

    def wait_drained(self, timeout: float) -> bool:
        """Block until everything appended so far is in the store (tests, benchmarks)."""
        target = self.log.written
        deadline = time.monotonic() + timeout
        with self._drained:
            while self.log.checkpoint < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._drained.wait(min(left, 0.5))
        return True

    def _run(self) -> None:
        position = self.log.checkpoint
        noted = self.inflight.load()
        # The batch being written when the process stopped, unless it was checkpointed.
        replay = noted if noted is not None and noted.end > position else None
        failures = 0
        while True:
            if self._stop.is_set() and (
                position >= self.log.written or time.monotonic() > self._stop_deadline
            ):
                return
            if self.faults.hold_drain:
                self._stop.wait(0.1)
                continue
            try:
                drained = self._drain_once(position, replay)
            except Exception:  # a bug must not stop the drain for good: log, back off, retry
                log.exception("spool drain crashed; retrying")
                drained = REFUSED
            if drained is None:
                continue
            if drained is REFUSED:
                # Retry exactly the batch that failed, under its token: its first attempt
                # may have stored part of it, and only the same token completes it. (A
                # batch refused for good is narrowed instead: see ``_refused``.)
                replay = None if self._narrowing else (self._attempt or replay)
                self._narrowing = False
                self._failing = True
                failures += 1
                self.metrics.drain_errors.inc()
                delay = random.uniform(0, min(BACKOFF_MAX, BACKOFF_FIRST * 2**failures))
                if self._stop.is_set():
                    time.sleep(delay)  # stopping: keep trying until the deadline
                else:
                    self._stop.wait(delay)
                continue
            assert isinstance(drained, Position)
            self._failing = False
            failures = 0
            position = drained
            replay = None

    def _drain_once(
        self, position: Position, replay: Inflight | None
    ) -> Position | _Refused | None:
        """One batch: its end when written and checkpointed, REFUSED when the store
        refused it, None when there was nothing to drain.

        ``replay``: the batch that was being written when the process stopped; it is
        collected again to exactly its old end and written under its old token. A batch
        retried after an error is the same kind of replay.
        """
        self._attempt = None
        batch = self._collect(position, stop=replay.end if replay else None)
        if batch is None:
            self.log.wait_durable_beyond(position, 0.1)
            return None
        tables = batch.tables()
        if tables:
            inflight = replay or Inflight(batch.start, batch.end, batch.oldest_ms)
            if replay is None:
                self.inflight.save(inflight)
            self._attempt = inflight
            result = self.writer.write_tables(
                tables,
                token=inflight.token(self.spool_id),
                since=datetime.fromtimestamp(inflight.oldest_ms / 1000, UTC),
                claim_round=inflight.claim_round,
            )
            if self.on_written is not None:
                self.on_written(result)
            if not result.ok:
                return self._refused(batch, result)
        if self.faults.pause_before_checkpoint:
            time.sleep(self.faults.pause_before_checkpoint)
        self.log.save_checkpoint(batch.end)
        self.metrics.drained_events.inc(batch.events)
        self.metrics.drain_lag.set(max(0.0, self.clock() - batch.oldest_ms / 1000))
        with self._state:
            self._oldest_ms = self._peek_created(self.log.checkpoint)
        with self._drained:
            self._drained.notify_all()
        self._release_memory_when_idle(batch.end)
        return batch.end

    def _release_memory_when_idle(self, drained: Position) -> None:
        """After the drain caught up, let the store return insert buffers to the system,
        so the service's memory falls back after a burst instead of staying at its peak."""
        now = time.monotonic()
        if self.log.durable <= drained and now - self._released >= RELEASE_EVERY_SECONDS:
            self._released = now
            try:
                self.writer.store.release_memory()
            except StoreError as exc:
                log.warning("could not release the store's cached memory", error=str(exc))

    def _collect(self, position: Position, stop: Position | None = None) -> _Batch | None:
        """Durable records from ``position``, up to ``batch_rows`` rows (or exactly up to
        ``stop``, a replayed batch's end); a small batch waits up to LINGER_SECONDS for
        more, so inserts stay large under load."""
        batch = _Batch(start=position)
        deadline = time.monotonic() + LINGER_SECONDS
        while True:
            for record in self.log.read(batch.end if batch.records else position, READ_BYTES):
                decoded = self._decode(record)
                if decoded is None:
                    batch.skip(record.end)
                else:
                    batch.add(decoded, record.end)
                if stop is not None:
                    if record.end >= stop:
                        return batch
                    continue
                if batch.rows >= self.batch_rows or self._isolating(batch.end):
                    return batch
            if batch.records == 0:
                return None
            if self._stop.is_set() or time.monotonic() >= deadline:
                return batch
            self.log.wait_durable_beyond(batch.end, deadline - time.monotonic())
            if self.log.durable <= batch.end:
                return batch

    def _isolating(self, end: Position) -> bool:
        """While a batch the store refused for good is drained one record at a time."""
        if self._isolate_until is None:
            return False
        if end > self._isolate_until:
            self._isolate_until = None
            return False
        return True

    def _refused(self, batch: _Batch, result: WriteResult) -> Position | _Refused:
        """The store refused a drain batch. An outage is retried as it is; a refusal of the
        rows themselves is narrowed to the record that causes it, which goes to the
        dead-letter folder (with the reason), so the records after it drain on."""
        permanent = result.code in PERMANENT_CODES
        if not self._failing:
            self._failing_since = time.monotonic()
        self._last_error = result.error[:300]
        log.warning(
            "spool drain failed; retrying",
            error=result.error,
            code=result.code,
            records=batch.records,
            permanent=permanent,
        )
        if not permanent:
            self._permanent_tries = 0
            return REFUSED
        if self._attempt is not None and not self._retract(self._attempt, result):
            return REFUSED
        if batch.records > 1:
            self._isolate_until = batch.end
            self._narrowing = True
            return REFUSED
        self._permanent_tries += 1
        if self._permanent_tries < DEAD_LETTER_TRIES:
            return REFUSED
        self._permanent_tries = 0
        record = next(iter(self.log.read(batch.start, 1)), None)
        if record is None:
            return REFUSED
        kept = self.dead_letters.keep(
            record.start.segment,
            record.start.offset,
            record.payload,
            f"ClickHouse error {result.code}: {result.error[:2000]}",
        )
        self.metrics.dead_letters.inc()
        log.error(
            "spool: the store refuses this record for good; moved to the dead letters "
            "(`meterhouse spool inspect|replay`)",
            segment=record.start.segment,
            offset=record.start.offset,
            events=batch.events,
            code=result.code,
            file=str(kept.path),
        )
        self.log.save_checkpoint(batch.end)
        with self._drained:
            self._drained.notify_all()
        return batch.end

    def _retract(self, attempt: Inflight, result: WriteResult) -> bool:
        """Before a refused batch is narrowed or set aside, withdraw its claims on the keys
        of the tables it did not store: the records then drain (or are replayed from the
        dead letters) as new batches that win those keys, while the keys of the tables it
        stored stay its own (so nothing is stored twice). False when the store did not
        answer (the batch is retried as it is)."""
        try:
            self.writer.retract(
                attempt.token(self.spool_id), attempt.claim_round, stored=result.stored
            )
            # Withdrawn claims stay in the engine's deduplication log: the next attempt
            # at this batch claims in a new round, under a new name, durably noted first.
            self._attempt = replace(attempt, claim_round=attempt.claim_round + 1)
            self.inflight.save(self._attempt)
        except (StoreError, OSError) as exc:
            log.warning("could not withdraw a refused batch's claims", error=str(exc))
            return False
        return True

    def _decode(self, record: Record) -> codec.SpoolBatch | None:
        """A record's batch; None when its checksum holds but it cannot be decoded (written
        by a bug or another version): it goes to the quarantine, the drain goes on."""
        try:
            return codec.decode(record.payload)
        except Exception as exc:  # any decode failure: keep the bytes, skip the record
            self.log.keep_damaged(record.start, record.payload, f"cannot be decoded: {exc}")
            return None

    def _peek_created(self, position: Position) -> int | None:
        head = self.log.peek(position, codec.CREATED.size + 1)
        # A damaged record's "time" would make the age gauge (and its alerts) nonsense.
        return codec.created_ms(head) if head is not None and codec.plausible_head(head) else None


def _spool_id(directory: Path) -> str:
    """This spool's name, made once: drain batch tokens of two spools never collide."""
    path = directory / SPOOL_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    spool_id = uuid.uuid4().hex
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        handle.write(spool_id)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return spool_id
