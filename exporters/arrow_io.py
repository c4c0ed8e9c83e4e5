"""Arrow tables in and out of the store: large inserts and key lookups without row objects.

The Store seam takes Python values column by column, which costs a Python object per
value: fine for the CLI, far too slow for ingest. With the embedded engine an Arrow table
goes in as it is (``INSERT ... SELECT * FROM Python(table)``; chdb reads the Arrow buffers),
and a batch's keys are checked by joining the same kind of table against ``event_keys``.
Other stores (a ClickHouse server) take the portable path through ``Store.insert`` and
parameterised lookups, which is correct everywhere and fast enough for a remote server's
own batch sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pyarrow as pa

from meterhouse.store.base import Store, check_identifier
from meterhouse.store.chdb_backend import ChdbStore
from meterhouse.store.native import decode_native

KEYS_TABLE: Final = "event_keys"
# Settings of every ingest insert: no merging of rows inside the inserted block (the
# engines that merge do it in the background and readers aggregate anyway), and no
# block hash deduplication (the writer deduplicates by key, exactly).
INSERT_SETTINGS: Final = {"optimize_on_insert": 0, "insert_deduplicate": 0}
_PARAM_CHUNK: Final = 2000

Key = tuple[str, str]


def insert_table(store: Store, table: str, rows: pa.Table) -> int:
    """Insert every row of ``rows`` (columns named as the table's) into ``table``."""
    if rows.num_rows == 0:
        return 0
    check_identifier(table)
    names = ", ".join(f"`{name}`" for name in rows.column_names)
    if isinstance(store, ChdbStore):
        store._run(  # the embedded engine's Arrow input: no Python object per value
            f"INSERT INTO {table} ({names}) SELECT * FROM Python(__mh_batch)",
            settings=INSERT_SETTINGS,
            __mh_batch=rows,
        )
        return int(rows.num_rows)
    columns: dict[str, list[Any]] = {
        name: rows.column(name).to_pylist() for name in rows.column_names
    }
    return store.insert(table, columns, settings=INSERT_SETTINGS)


def stored_keys(store: Store, table: str, keys: pa.Table, *, authoritative: bool) -> set[Key]:
    """Which (source, event_id) of ``keys`` are stored for ``table``.

    ``event_keys`` answers by primary key. ``authoritative`` also asks the table itself:
    for a batch whose earlier insert may have stopped half-way (a crash or an error between
    the parts one INSERT writes), the table and ``event_keys`` can disagree for a moment.
    """
    check_identifier(table)
    if keys.num_rows == 0:
        return set()
    found = _lookup(
        store,
        f"SELECT source, event_id FROM {KEYS_TABLE} WHERE table_name = {{t:String}} AND ",
        {"t": table},
        keys,
    )
    if authoritative:
        in_table = _lookup(store, f"SELECT source, event_id FROM {table} WHERE ", {}, keys)
        missing = in_table - found
        if missing:
            # Keys of rows the table has but event_keys lacks: write them, so the fast check
            # is complete again.
            insert_table(
                store,
                KEYS_TABLE,
                pa.table(
                    {
                        "table_name": [table] * len(missing),
                        "source": [s for s, _ in missing],
                        "event_id": [e for _, e in missing],
                    }
                ),
            )
        found |= in_table
    return found


def _lookup(store: Store, select: str, params: Mapping[str, Any], keys: pa.Table) -> set[Key]:
    probe = keys.select(["source", "event_id"])
    if isinstance(store, ChdbStore):
        raw = store._run(
            select + "(source, event_id) IN (SELECT source, event_id FROM Python(__mh_batch))",
            "Native",
            params,
            __mh_batch=probe,
        )
        return {(str(s), str(e)) for s, e in decode_native(raw).rows}
    found: set[Key] = set()
    wanted = set(zip(probe.column(0).to_pylist(), probe.column(1).to_pylist(), strict=True))
    ids = sorted({event_id for _, event_id in wanted})
    for start in range(0, len(ids), _PARAM_CHUNK):
        result = store.query(
            select + "event_id IN {ids:Array(String)}",
            {**params, "ids": ids[start : start + _PARAM_CHUNK]},
        )
        found.update((str(s), str(e)) for s, e in result.rows if (s, e) in wanted)
    return found
