"""Batch writer: one Arrow table per target table in, each event stored exactly once.

Every producer of events (HTTP CloudEvents and OTLP through the spool, the poller, the
demo) ends here with ``write_tables``. For one batch:

1. within each keyed table, later repeats of an (account_id, source, event_id) are dropped;
2. the batch claims its keys in ``event_claims`` and keeps only the keys it won
   (exporters/claims.py): an event another batch claimed first, from this process or any
   other writer on the same ClickHouse, is a duplicate;
3. each table's rows go in as one Arrow insert named by the batch's token
   (``insert_deduplication_token``), with ``deduplicate_blocks_in_dependent_materialized_views``:
   when the same batch is written again (a replay after kill -9, a retry after an error),
   the engine drops the blocks that are stored already, in the table and in each view,
   and writes the ones that are missing, so rollups such as ``usage_daily`` are completed
   rather than skipped or doubled.

The token is the caller's name for the batch (the spool names each drain batch durably);
without one it is a hash of the batch's contents, so a retry of the same batch is
recognised as such.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa

from exporters.claims import CLAIMS_TABLE, claim, first_of_each_key
from meterhouse.errors import StoreError
from meterhouse.logs import get_logger
from meterhouse.store.base import Store

log = get_logger(__name__)

KEYED_TABLES: Final = frozenset(
    {"usage_events", "job_run_events", "job_logs", "job_definition_events", "meter_events"}
)
# Inserts in the order a reader expects them: a run's cost never shows before the run.
TABLE_ORDER: Final = (
    "job_definition_events",
    "jobs",
    "job_run_events",
    "job_logs",
    "meter_events",
    "usage_events",
)
# Settings of every insert: no merging inside the inserted block (readers aggregate
# anyway), block deduplication by the batch's token, in the views too.
INSERT_SETTINGS: Final[Mapping[str, Any]] = {
    "optimize_on_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}
# On a cluster, claims must be visible to every writer when the insert returns: written
# through the Distributed table synchronously, to a quorum of replicas, one at a time (so
# block numbers follow commit order), and read with sequential consistency.
CLUSTER_CLAIM_SETTINGS: Final[Mapping[str, Any]] = {
    "distributed_foreground_insert": 1,
    "insert_quorum": "auto",
    "insert_quorum_parallel": 0,
    "select_sequential_consistency": 1,
}


@dataclass
class WriteResult:
    ok: bool
    written: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_by_table: dict[str, int] = field(default_factory=dict)
    error: str = ""
    code: int = 0  # ClickHouse's error code when the store refused the batch
    seconds: float = 0.0
    stored: set[str] = field(default_factory=set)  # tables this batch is complete in


def content_token(tables: Mapping[str, pa.Table]) -> str:
    """A batch's name from its contents: the same rows give the same token."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tables[name].schema) as stream:
            stream.write_table(tables[name])
        digest.update(sink.getvalue())
    return "content:" + digest.hexdigest()


def claim_name(token: str, claim_round: int) -> str:
    """The name a batch claims under: its token, and after its claims were withdrawn
    (a batch refused for good) the round, since withdrawn claims cannot be re-sent under
    the name the engine remembers."""
    return token if claim_round == 0 else f"{token}#claims-round-{claim_round}"


class ClickHouseWriter:
    def __init__(self, store: Store, *, cluster: bool = False) -> None:
        self.store = store
        self.claim_settings = {**INSERT_SETTINGS, **(CLUSTER_CLAIM_SETTINGS if cluster else {})}
        self._lock = threading.Lock()  # one batch at a time from the threads of a process

    @property
    def lock(self) -> threading.Lock:
        """Held while a batch is written: whoever holds it knows no insert is in flight
        (a meter's rollup is made so, meterhouse/meters/rollup.py)."""
        return self._lock

    def write_tables(
        self,
        tables: Mapping[str, pa.Table],
        *,
        token: str | None = None,
        since: datetime | None = None,
        claim_round: int = 0,
    ) -> WriteResult:
        """Store one batch, each event once; never raises: failures are in the result.

        ``token`` names the batch durably (the same batch written again must carry the same
        token); ``since`` is when its first rows were accepted (where a replay looks for
        its claims).
        """
        with self._lock:
            return self._write_tables(tables, token=token, since=since, claim_round=claim_round)

    def retract(self, token: str, claim_round: int, *, stored: set[str]) -> None:
        """Withdraw the claims of batch ``token`` on the keys of every table but ``stored``
        (a batch the store refused for good: its records are written again as other
        batches, which must be able to win those keys). Raises StoreError."""
        keep = sorted(stored) or [""]
        self.store.command(
            f"DELETE FROM {CLAIMS_TABLE} WHERE claim = {{claim:String}} "
            "AND table_name NOT IN {keep:Array(String)}",
            {"claim": claim_name(token, claim_round), "keep": keep},
        )

    def _write_tables(
        self,
        tables: Mapping[str, pa.Table],
        *,
        token: str | None,
        since: datetime | None,
        claim_round: int,
    ) -> WriteResult:
        started = time.perf_counter()
        result = WriteResult(ok=True)
        order = [t for t in TABLE_ORDER if t in tables] + sorted(
            t for t in tables if t not in TABLE_ORDER
        )
        token = token or content_token(tables)
        try:
            unique = {t: first_of_each_key(tables[t]) for t in order if t in KEYED_TABLES}
            claimed = claim(
                self.store,
                unique,
                claim_name(token, claim_round),
                since=since or datetime.now(UTC),
                settings=self.claim_settings,
            )
            for table in order:
                rows = claimed.rows.get(table, tables[table])
                # Dropped: claimed first by another batch. Replayed: claimed by an earlier
                # write of this batch, so stored then (the insert below completes what
                # that write left undone, and the engine drops the rest).
                replayed = claimed.replayed.get(table, 0)
                dropped = tables[table].num_rows - rows.num_rows + replayed
                if dropped:
                    result.duplicates += dropped
                    result.duplicates_by_table[table] = dropped
                if rows.num_rows:
                    inserted = self.store.insert_arrow(
                        table,
                        rows,
                        settings={
                            **INSERT_SETTINGS,
                            "insert_deduplication_token": f"{token}:{table}",
                        },
                    )
                    if inserted > replayed:
                        result.written[table] = inserted - replayed
                result.stored.add(table)
        except StoreError as exc:
            log.warning("insert failed", error=str(exc), code=exc.code)
            result.ok = False
            result.error = str(exc)
            result.code = exc.code or 0
        except (ValueError, TypeError, OverflowError, pa.ArrowException) as exc:
            log.error("insert refused a value", error=str(exc), error_type=type(exc).__name__)
            result.ok = False
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        return result
