"""Server backend: a ClickHouse server over HTTP, through clickhouse-connect."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError
from clickhouse_connect.driver.exceptions import Error as DriverError

from meterhouse.errors import StoreError, StoreUnavailableError
from meterhouse.store.base import (
    Columns,
    QueryResult,
    Store,
    check_identifier,
    column_lengths,
    normalize_param,
)
from meterhouse.store.wire import ARROW_OUTPUT, parse_engine_error

# clickhouse-connect checks insert columns against DESCRIBE TABLE before sending anything.
_UNKNOWN_COLUMN = re.compile(r"Unrecognized column (.+) in table")


class ServerStore(Store):
    def __init__(self, url: str, database: str, *, connect_timeout: float = 10) -> None:
        parts = urlsplit(url)
        path_db = parts.path.strip("/")
        self.url = url
        self.database = check_identifier(path_db or database)
        try:
            admin = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                secure=parts.scheme == "https",
                connect_timeout=connect_timeout,
                autogenerate_session_id=False,
            )
            admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            admin.close()
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=self.database,
                secure=parts.scheme == "https",
                connect_timeout=connect_timeout,
                autogenerate_session_id=False,
            )
        except DriverError as exc:
            raise _translate(exc, "") from exc

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        try:
            result = self._client.query(
                sql,
                parameters=_params(params),
                settings=dict(settings or {}),
                tz_mode="aware",
            )
        except DriverError as exc:
            raise _translate(exc, sql) from exc
        return QueryResult(
            column_names=tuple(result.column_names),
            column_types=tuple(t.name for t in result.column_types),
            rows=[tuple(row) for row in result.result_rows],
        )

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            self._client.command(sql, parameters=_params(params), settings=dict(settings or {}))
        except DriverError as exc:
            raise _translate(exc, sql) from exc

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
        check_identifier(table)  # a ValueError, as from the embedded backend
        try:
            self._client.insert(
                table,
                [list(values) for values in columns.values()],
                column_names=list(columns),
                column_oriented=True,
                settings=dict(settings or {}),
            )
        except ProgrammingError as exc:
            unknown = _UNKNOWN_COLUMN.search(str(exc))
            if unknown:
                # The same code and name as the embedded backend gives for this mistake.
                raise StoreError(
                    f"table {table} has no column {unknown.group(1)}",
                    code=16,
                    name="NO_SUCH_COLUMN_IN_TABLE",
                    sql=f"INSERT INTO {table}",
                ) from exc
            raise _translate(exc, f"INSERT INTO {table}") from exc
        except DriverError as exc:
            raise _translate(exc, f"INSERT INTO {table}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"rows for table {table} do not fit its column types: {exc}") from exc
        return count

    def insert_arrow(
        self,
        table: str,
        data: pa.Table,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        if data.num_rows == 0:
            return 0
        check_identifier(table)
        try:
            self._client.insert_arrow(table, data, settings=dict(settings or {}))
        except DriverError as exc:
            raise _translate(exc, f"INSERT INTO {table} FORMAT Arrow") from exc
        return int(data.num_rows)

    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        try:
            return self._client.query_arrow(
                sql,
                parameters=_params(params),
                settings={**ARROW_OUTPUT, **(settings or {})},
                use_strings=True,
            )
        except DriverError as exc:
            raise _translate(exc, sql) from exc

    def close(self) -> None:
        self._client.close()


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {key: normalize_param(value) for key, value in params.items()}


def _translate(exc: DriverError, sql: str) -> StoreError:
    text = str(exc)
    if isinstance(exc, OperationalError) and "Code:" not in text:
        return StoreUnavailableError(f"ClickHouse server unreachable: {text}", sql=sql)
    if isinstance(exc, DatabaseError) or "Code:" in text:
        return parse_engine_error(text, sql)
    return StoreError(text, sql=sql)
