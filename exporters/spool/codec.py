"""A spool record: one accepted request's priced rows, as Arrow IPC streams per table.

``<i64 created, epoch milliseconds><msgpack [events, [[table, ipc bytes], ...]]>``. The
creation time comes first so the spool can tell the age of its oldest record by reading 8
bytes. Arrow IPC keeps every value exactly as the ingest path built it (Decimal128 amounts,
millisecond times), and reading it back is zero-copy.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec
import pyarrow as pa

CREATED: Final = struct.Struct("<q")


class _Body(msgspec.Struct, array_like=True, frozen=True):
    events: int
    tables: list[tuple[str, bytes]]


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(_Body)


@dataclass(frozen=True)
class SpoolBatch:
    created_ms: int
    events: int
    tables: dict[str, pa.Table]

    @property
    def rows(self) -> int:
        return sum(table.num_rows for table in self.tables.values())


def encode(tables: Mapping[str, pa.Table], events: int, created_ms: int) -> bytes:
    parts: list[tuple[str, bytes]] = []
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        parts.append((name, sink.getvalue().to_pybytes()))
    return CREATED.pack(created_ms) + _ENCODER.encode(_Body(events, parts))


def decode(payload: bytes) -> SpoolBatch:
    (created_ms,) = CREATED.unpack_from(payload)
    body = _DECODER.decode(memoryview(payload)[CREATED.size :])
    tables = {name: pa.ipc.open_stream(pa.py_buffer(data)).read_all() for name, data in body.tables}
    return SpoolBatch(created_ms, body.events, tables)


def created_ms(payload_head: bytes) -> int:
    (value,) = CREATED.unpack_from(payload_head)
    return int(value)


# Creation times a record can carry (2000-01-01 to 2200-01-01, epoch milliseconds).
_PLAUSIBLE_MS: Final = (946_684_800_000, 7_258_118_400_000)
_BODY_ARRAY: Final = 0x92  # msgpack: an array of two items (_Body)


def plausible_head(head: bytes) -> bool:
    """Whether these first payload bytes can start a record: a cheap filter for the log's
    resynchronisation after a damaged record (the checksum decides)."""
    if len(head) <= CREATED.size:
        return False
    (created,) = CREATED.unpack_from(head)
    return _PLAUSIBLE_MS[0] <= created < _PLAUSIBLE_MS[1] and head[CREATED.size] == _BODY_ARRAY
