"""Decode ClickHouse's Native format with clickhouse-connect's own column readers.

The embedded backend asks chdb for ``Native`` output and decodes it here, so both backends
turn the same bytes into the same Python values with the same code.
"""

from __future__ import annotations

from collections.abc import Iterator

from clickhouse_connect.driver.ctypes import RespBuffCls
from clickhouse_connect.driver.query import QueryContext
from clickhouse_connect.driver.query import QueryResult as CCQueryResult
from clickhouse_connect.driver.transform import NativeTransform

from meterhouse.store.base import QueryResult


class _OneChunk:
    """The byte source shape clickhouse-connect's response buffer reads from."""

    def __init__(self, data: bytes) -> None:
        self.gen: Iterator[bytes] = iter([data])

    def close(self) -> None:
        self.gen = iter(())


def decode_native(data: bytes) -> QueryResult:
    if not data:
        return QueryResult(column_names=(), column_types=(), rows=[])
    parsed = NativeTransform.parse_response(
        RespBuffCls(_OneChunk(data)),  # type: ignore[no-untyped-call]
        QueryContext(tz_mode="aware"),
    )
    assert isinstance(parsed, CCQueryResult)
    return QueryResult(
        column_names=tuple(parsed.column_names),
        column_types=tuple(t.name for t in parsed.column_types),
        rows=[tuple(row) for row in parsed.result_rows],
    )
