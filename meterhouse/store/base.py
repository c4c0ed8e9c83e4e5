"""The store seam: everything the pipeline asks of ClickHouse, whichever backend serves it.

Backends (``chdb_backend``, ``server_backend``) live beside this module and are chosen by
``open_store`` from the URL. Both return the same Python values for the same query:
Decimal for Decimal columns, timezone-aware datetimes for DateTime64 columns declared with
a time zone, ``dict`` for Map columns. The contract suite (tests/store/) runs the same
cases against both.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.binding import format_bind_value

if TYPE_CHECKING:  # pyarrow is imported by the backends, only when a store is opened
    import pyarrow as pa

Columns = Mapping[str, Sequence[Any]]

# In an embedded store's data directory: which process owns it and the URL to ask instead.
OWNER_FILE = "meterhouse-owner.json"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class QueryResult:
    """Rows of one query, with column names and ClickHouse type names."""

    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        index = self.column_names.index(name)
        return [row[index] for row in self.rows]

    def dicts(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.column_names, row, strict=True))

    def scalar(self) -> Any:
        """The first column of the first row; None when there is no row."""
        return self.rows[0][0] if self.rows else None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so callers never test a backend's type.

    ``data_dir``: the directory of an engine embedded in this process (its owner file and
    the default spool live there), None for a remote server. ``writes``: inserts and DDL
    are allowed. ``access_management``: CREATE USER / ROLE / ROW POLICY run for real (a
    server); the embedded engine only parses them. ``shared``: statements run on the
    embedded engine of a running service, one at a time beside its requests.
    """

    data_dir: Path | None = None
    writes: bool = True
    access_management: bool = True
    shared: bool = False


class Store(abc.ABC):
    """One ClickHouse database, embedded or on a server.

    Rows go in and out two ways: Python values (``query``, ``insert``: the CLI, small
    tables) and Arrow tables (``query_arrow``, ``insert_arrow``: ingest and every large
    batch, with no Python object per value). Every backend implements both; the contract
    suite (tests/store/) runs the same cases against each.
    """

    url: str
    database: str
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run a SELECT (or anything that returns rows) with ``{name:Type}`` parameters."""

    @abc.abstractmethod
    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Run DDL or a statement whose result is not needed."""

    @abc.abstractmethod
    def insert(
        self,
        table: str,
        columns: Columns,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert rows given column-wise (name -> values, all of one length); return the count."""

    @abc.abstractmethod
    def insert_arrow(
        self,
        table: str,
        data: pa.Table,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert an Arrow table whose column names are the table's; return the row count.

        ``settings`` apply to this insert only (for example ``insert_deduplication_token``).
        """

    @abc.abstractmethod
    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """Run a query and return its rows as one Arrow table (strings as ``string``)."""

    def release_memory(self) -> None:
        """Give memory the engine keeps cached back to the system (after a burst of
        inserts). A server manages its own memory: nothing to do."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection or the embedded engine."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_identifier(name: str) -> str:
    """Table and column names are interpolated, so only plain identifiers are allowed."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain ClickHouse identifier: {name!r}")
    return name


def column_lengths(columns: Columns) -> int:
    """Check every column has the same length and return it."""
    lengths = {name: len(values) for name, values in columns.items()}
    if not lengths:
        raise ValueError("insert needs at least one column")
    distinct = set(lengths.values())
    if len(distinct) != 1:
        raise ValueError(f"insert columns differ in length: {lengths}")
    return distinct.pop()


def normalize_param(value: Any) -> Any:
    """One Python-to-parameter mapping for both backends.

    Datetimes keep their milliseconds (clickhouse-connect's binding drops them) and are
    sent in UTC; naive datetimes are taken as UTC, because every time column is UTC.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, (list, tuple)):
        return [normalize_param(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return int(value)
    return value


def param_text(value: Any) -> str:
    """A parameter as ClickHouse's escaped text format, for backends that take text."""
    normalized = normalize_param(value)
    if isinstance(normalized, (date, int, float)) and not isinstance(normalized, bool):
        return str(normalized)
    return str(format_bind_value(normalized))
