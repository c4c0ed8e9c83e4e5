"""Events into a store the way every writer of events stores them, for tests that need data.

rate (meterhouse.rating.rater) -> columns (meterhouse.processing.columns) ->
``ClickHouseWriter.write_tables``: the shipped path, not a copy of it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from exporters.clickhouse_writer import ClickHouseWriter, WriteResult
from meterhouse import records as r
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.store.base import Store


@functools.cache
def shipped_rater() -> Rater:
    """The service's rater (bundled catalog, shipped price book), loaded once."""
    return Rater.default()


def write_events(
    store: Store, events: Sequence[r.Event], rater: Rater | None = None
) -> WriteResult:
    """Rate, lay out and write ``events``; the writer drops what is stored already."""
    builder = ColumnBuilder(AccountDirectory(store), rater or shipped_rater())
    return ClickHouseWriter(store).write_tables(builder.build(events).tables)
