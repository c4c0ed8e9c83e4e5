"""Which writer stores an event: claims in ClickHouse, the first committed one wins.

An event is identified by (account_id, source, event_id) within its table, so one
account's events never drop, overwrite or shadow another's, even under a shared source.
Before a batch's rows are inserted, the writer inserts one claim per key into
``event_claims`` (migration 0050) in one INSERT named by the batch's token, then asks which
keys it won: those whose earliest claim, by the engine's ``_block_number`` (the order in
which inserts into the table committed), is its own. Any writer that reads a key's claims
after its own claim committed sees every earlier claim, so all writers agree on the
winner without a lock, whichever process or replica they run in. docs/durability.md
explains why this holds on one node and what a cluster needs.
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

from meterhouse.store.base import Store

CLAIMS_TABLE: Final = "event_claims"
KEY_COLUMNS: Final = ("account_id", "source", "event_id")
# A claim is written at or after the first attempt at its batch; a replay looks for it
# from the batch's oldest acceptance on, less this margin (clock steps on the host).
CLAIM_TIME_MARGIN: Final = timedelta(hours=1)

WON_SQL: Final = f"""
SELECT table_name, account_id, source, event_id,
    argMin(attempt, (_block_number, _block_offset)) = {{attempt:String}} AS first_attempt
FROM {CLAIMS_TABLE}
WHERE (table_name, account_id, source, event_id) IN (
    SELECT table_name, account_id, source, event_id
    FROM {CLAIMS_TABLE}
    WHERE claimed_at >= {{since:DateTime64(3)}} AND claim = {{claim:String}}
)
GROUP BY table_name, account_id, source, event_id
HAVING argMin(claim, (_block_number, _block_offset)) = {{claim:String}}
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
                    "claimed_at": pa.array([claimed_at] * count, pa.timestamp("s", tz="UTC")),
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
        CLAIMS_TABLE, claims, settings={**settings, "insert_deduplication_token": f"{token}:claims"}
    )
    won = store.query_arrow(
        WON_SQL,
        {"claim": token, "attempt": attempt, "since": min(since, now) - CLAIM_TIME_MARGIN},
    )
    kept: dict[str, pa.Table] = {}
    replayed: dict[str, int] = {}
    for name, rows in tables.items():
        if won.num_rows == 0:
            kept[name] = rows.slice(0, 0)
            continue
        mine = won.filter(pc.equal(won.column("table_name"), name))
        kept[name] = rows.filter(pc.is_in(joined_keys(rows), value_set=joined_keys(mine)))
        firsts = pc.sum(pc.cast(mine.column("first_attempt"), pa.int64())).as_py() or 0
        if mine.num_rows > firsts:
            replayed[name] = mine.num_rows - firsts
    return Claimed(kept, replayed)
