"""``insert`` of Python columns for backends that take Arrow: each column is typed as
the table declares it (DESCRIBE TABLE), so Decimals and times arrive exact.

Shared by the embedded backend and the service-backed one, which both insert Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from meterhouse.errors import StoreError
from meterhouse.store.arrow_types import arrow_schema_for
from meterhouse.store.base import Columns, Store, check_identifier, column_lengths


class DescribedInsert(Store):
    """A Store whose ``insert`` is ``insert_arrow`` of the columns typed by DESCRIBE."""

    def table_columns(self, table: str) -> tuple[tuple[str, str], ...]:
        """(name, type) of a table's insertable columns, cached per table."""
        cache: dict[str, tuple[tuple[str, str], ...]] = self.__dict__.setdefault(
            "_described_columns", {}
        )
        if table not in cache:
            described = self.query(f"DESCRIBE TABLE {check_identifier(table)}")
            cache[table] = tuple(
                (row["name"], row["type"])
                for row in described.dicts()
                if row["default_type"] not in ("MATERIALIZED", "ALIAS")
            )
        return cache[table]

    def insert(
        self,
        table: str,
        columns: Columns,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        count = column_lengths(columns)
        if count == 0:
            return 0
        known = dict(self.table_columns(check_identifier(table)))
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise StoreError(
                f"table {table} has no column(s) {', '.join(unknown)}; it has {', '.join(known)}",
                code=16,
                name="NO_SUCH_COLUMN_IN_TABLE",
            )
        schema = arrow_schema_for([(name, known[name]) for name in columns])
        try:
            batch = pa.table(
                {
                    name: pa.array(list(values), type=schema.field(name).type)
                    for name, values in columns.items()
                }
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise StoreError(f"rows for table {table} do not fit its column types: {exc}") from exc
        return self.insert_arrow(table, batch, settings=settings)
