"""Which writer stores an event: claims in ClickHouse, the first committed one wins.

An event is identified by (account_id, source, event_id) within its table, so one
account's events never drop, overwrite or shadow another's, even under a shared source.
Before a batch's rows are inserted, the writer inserts one claim per key into
``event_claims`` (migration 0050) in one INSERT named by the batch's token, then asks which
keys it lost: those with a claim of a lower ``_block_number`` (the engine numbers the
inserts into a table in the order they commit; a batch's claims are one block). Any
writer that reads a key's claims after its own claim committed sees every earlier claim,
so all writers agree on the winner without a lock, whichever process or replica they
run in. docs/durability.md explains why this holds on one node and what a cluster needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from meterhouse.errors import StoreError
from meterhouse.store.base import Store

CLAIMS_TABLE: Final = "event_claims"
KEY_COLUMNS: Final = ("account_id", "source", "event_id")
# A claim is written at or after the first attempt at its batch; a replay looks for it
# from the batch's oldest acceptance on, less this margin (clock steps on the host).
CLAIM_TIME_MARGIN: Final = timedelta(hours=1)

# One block per claims insert, whatever its size: every claim of a batch then has the
# batch's one block number, and "claimed before this batch" is a comparison with it.
ONE_BLOCK: Final[Mapping[str, Any]] = {
    "min_insert_block_size_rows": 1_000_000_000,
    "min_insert_block_size_bytes": 1 << 40,
    "max_insert_block_size": 1_000_000_000,
}
_MINE: Final = f"""
FROM {CLAIMS_TABLE}
WHERE claimed_at >= {{since:DateTime64(3)}} AND claim = {{claim:String}}"""
# This batch's claims: whether this write made them (else an earlier write of the same
# batch did: a replay), and their block.
MINE_SQL: Final = f"""
SELECT countIf(attempt = {{attempt:String}}), count(), min(_block_number), max(_block_number)
{_MINE}"""
# Keys of this batch that another batch claimed first. Re-deliveries are rare, so this
# answer is small; the keys this batch won are all the others.
LOST_SQL: Final = f"""
SELECT DISTINCT table_name, account_id, source, event_id
FROM {CLAIMS_TABLE}
WHERE (table_name, account_id, source, event_id) IN (
    SELECT table_name, account_id, source, event_id {_MINE}
)
AND _block_number < {{block:UInt64}}
"""
_SEPARATOR: Final = "\x1f"  # cannot occur in a validated account, source or id


def first_of_each_key(rows: pa.Table) -> pa.Table:
    """``rows`` without later repeats of an (account_id, source, event_id), order kept."""
    if rows.num_rows < 2:
        return rows
    numbered = rows.select(list(KEY_COLUMNS)).append_column(
        "__row", pa.array(np.arange(rows.num_rows, dtype=np.int64))
    )
    firsts = numbered.group_by(list(KEY_COLUMNS), use_threads=False).aggregate([("__row", "min")])
    if firsts.num_rows == rows.num_rows:
        return rows
    return rows.take(np.sort(firsts.column("__row_min").to_numpy()))


def joined_keys(rows: pa.Table) -> pa.Array:
    """One string per row: its key's parts joined, for set membership."""
    parts = [pc.cast(rows.column(name), pa.string()) for name in KEY_COLUMNS]
    return pc.binary_join_element_wise(*parts, _SEPARATOR)


@dataclass(frozen=True)
class Claimed:
    """Per table, the rows this batch won, and how many of them an earlier write of the
    same batch had claimed already (a replay: the engine keeps what it stored then)."""

    rows: dict[str, pa.Table]
    replayed: dict[str, int]


def claim_rows(
    tables: Mapping[str, pa.Table], claim: str, attempt: str, claimed_at: datetime
) -> pa.Table:
    """The claims of every key of ``tables`` (table name -> deduplicated rows)."""
    parts = []
    for name, rows in tables.items():
        if rows.num_rows == 0:
            continue
        count = rows.num_rows
        parts.append(
            pa.table(
                {
                    "table_name": pa.array([name] * count, pa.string()),
                    "account_id": pc.cast(rows.column("account_id"), pa.string()),
                    "source": pc.cast(rows.column("source"), pa.string()),
                    "event_id": pc.cast(rows.column("event_id"), pa.string()),
                    "claim": pa.array([claim] * count, pa.string()),
                    "attempt": pa.array([attempt] * count, pa.string()),
                    "claimed_at": pa.array([claimed_at] * count, pa.timestamp("ms", tz="UTC")),
                }
            )
        )
    return pa.concat_tables(parts) if parts else pa.table({})


def claim(
    store: Store,
    tables: Mapping[str, pa.Table],
    token: str,
    *,
    since: datetime,
    settings: Mapping[str, Any],
) -> Claimed:
    """Claim every key of ``tables`` for the batch ``token``; return each table's rows
    that this batch won (in their order), the others being stored by an earlier claim.

    Idempotent for a token: a replayed batch's claims are dropped by block deduplication,
    and the keys it won the first time are the keys it wins now.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    attempt = uuid.uuid4().hex
    claims = claim_rows(tables, token, attempt, now)
    if claims.num_rows == 0:
        return Claimed(dict(tables), {})
    store.insert_arrow(
        CLAIMS_TABLE,
        claims,
        settings={**settings, **ONE_BLOCK, "insert_deduplication_token": f"{token}:claims"},
    )
    mine = {"claim": token, "since": min(since, now) - CLAIM_TIME_MARGIN}
    fresh, total, first_block, last_block = store.query(
        MINE_SQL, {**mine, "attempt": attempt}
    ).rows[0]
    if total < claims.num_rows:
        # The claims just written are not all visible: nothing is written, the caller
        # retries the batch under its token.
        raise StoreError(f"claims of batch {token}: wrote {claims.num_rows}, found {total}")
    # Two blocks of one token: the batch was claimed again after its first claims left
    # the deduplication window (docs/durability.md, "Limits of the window"). The first
    # block is the batch's place in the order.
    lost = store.query_arrow(LOST_SQL, {**mine, "block": int(first_block)})
    fresh = fresh if first_block == last_block else 0
    kept: dict[str, pa.Table] = {}
    replayed: dict[str, int] = {}
    for name, rows in tables.items():
        taken = lost.filter(pc.equal(lost.column("table_name"), name)) if lost.num_rows else lost
        won = rows
        if taken.num_rows:
            won = rows.filter(pc.invert(pc.is_in(joined_keys(rows), value_set=joined_keys(taken))))
        kept[name] = won
        if not fresh and won.num_rows:  # claimed by an earlier write of this batch
            replayed[name] = won.num_rows
    return Claimed(kept, replayed)
