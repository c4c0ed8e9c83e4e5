"""Service-backed store: the store of a running `meterhouse run`, through its admin API.

chdb lets one process own a data directory. While `meterhouse run` holds it, CLI commands
open this store instead: every statement, read or write, runs on the service's own store
through its admin-only store endpoint (meterhouse/service/store_api.py), with the admin
token from the owner file. Parameters travel as values and are bound by the service's
store; query results come back as JSON with their column types and are turned back into
the Python values the local backends return (Decimal, aware datetime, dict for Map);
Arrow travels as Arrow IPC, so ``query_arrow`` and ``insert_arrow`` are exact. The
service's refusals become the same StoreError (code, name) as on the other backends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from meterhouse.errors import ServiceRefusedError, StoreError
from meterhouse.jsonable import result_from_json
from meterhouse.service.client import ServiceClient
from meterhouse.store.base import Capabilities, QueryResult, check_identifier, normalize_param
from meterhouse.store.described_insert import DescribedInsert
from meterhouse.store.wire import read_arrow_stream

if TYPE_CHECKING:
    import pyarrow as pa

STORE_API = "/api/v1/store"
# Arrow bodies larger than this go in several requests (the service answers 413 past its
# MH_INGEST_MAX_BODY_BYTES, whose default is 5 MiB).
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024


def wire_param(value: Any) -> Any:
    """A parameter as JSON the service's store binds as the local stores bind the value."""
    normalized = normalize_param(value)
    if isinstance(normalized, list):
        return [wire_param(item) for item in normalized]
    if isinstance(normalized, date):
        return normalized.isoformat()
    if isinstance(normalized, UUID):
        return str(normalized)
    if isinstance(normalized, dict):
        return {str(k): wire_param(v) for k, v in normalized.items()}
    return normalized


def _strip(kind: str) -> str:
    """The type a value is read as: Nullable, LowCardinality and a SimpleAggregateFunction's
    function (``min`` of ``SimpleAggregateFunction(min, DateTime64(3))`` is a time) away."""
    while True:
        for wrapper in ("Nullable(", "LowCardinality("):
            if kind.startswith(wrapper):
                kind = kind[len(wrapper) : -1]
                break
        else:
            if not kind.startswith("SimpleAggregateFunction("):
                return kind
            kind = _split_top(kind[len("SimpleAggregateFunction(") : -1])[-1]


def _split_top(inner: str) -> list[str]:
    """``String, Array(Decimal(38, 12))`` -> its top-level parts."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:index].strip())
            start = index + 1
    parts.append(inner[start:].strip())
    return parts


def from_json(value: Any, kind: str) -> Any:
    """One JSON value back to the Python value a local backend gives for ``kind``."""
    if value is None:
        return None
    base = _strip(kind)
    if base.startswith("DateTime"):
        return datetime.fromisoformat(str(value))
    if base in {"Date", "Date32"}:
        return date.fromisoformat(str(value))
    if base.startswith("Decimal"):
        return Decimal(str(value))
    if base == "UUID":
        return UUID(str(value))
    if isinstance(value, str) and re.fullmatch(r"U?Int\d+", base):
        return int(value)  # a Map key: JSON object keys are strings
    if base.startswith("Array(") and isinstance(value, list):
        return [from_json(item, base[len("Array(") : -1]) for item in value]
    if base.startswith("Map(") and isinstance(value, dict):
        key_kind, value_kind = _split_top(base[len("Map(") : -1])
        return {from_json(k, key_kind): from_json(v, value_kind) for k, v in value.items()}
    return value


class ServiceStore(DescribedInsert):
    """A full Store over a running service's admin store endpoint."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        self.client = ServiceClient(url, token, timeout=timeout)
        self.url = self.client.url
        # Access management (CREATE USER ...) is left to the service's own store.
        self.capabilities = Capabilities(writes=True, access_management=False, shared=True)
        self.batch_bytes = batch_bytes
        # The service's database: ad-hoc SQL confines queries to it by name.
        self.database = "(service)"
        try:
            self.database = str(self.query("SELECT currentDatabase()").scalar())
        except BaseException:
            self.client.close()
            raise

    def _post(self, op: str, sql: str, **kwargs: Any) -> Any:
        try:
            return self.client.request("POST", f"{STORE_API}/{op}", **kwargs)
        except ServiceRefusedError as refused:
            body = refused.body
            code = body.get("code")
            if isinstance(code, int):  # ClickHouse refused the statement: its own words
                raise StoreError(
                    str(body.get("detail", refused)),
                    code=code,
                    name=str(body.get("name", "")),
                    sql=sql,
                ) from refused
            hint = (
                "; the CLI sends MH_ADMIN_TOKEN, or the token in the store's owner file"
                if refused.status == 401
                else ""
            )
            raise StoreError(f"{refused}{hint}", sql=sql) from refused

    def _statement(
        self,
        op: str,
        sql: str,
        params: Mapping[str, Any] | None,
        settings: Mapping[str, Any] | None,
    ) -> Any:
        payload = {
            "sql": sql,
            "params": {name: wire_param(value) for name, value in (params or {}).items()},
            "settings": dict(settings or {}),
        }
        return self._post(op, sql, json=payload)

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        result = result_from_json(self._statement("query", sql, params, settings).json())
        kinds = result.column_types
        rows = [
            tuple(from_json(v, k) for v, k in zip(row, kinds, strict=True)) for row in result.rows
        ]
        return QueryResult(result.column_names, kinds, rows)

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._statement("command", sql, params, settings)

    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        return read_arrow_stream(self._statement("query-arrow", sql, params, settings).content)

    def insert_arrow(
        self,
        table: str,
        data: pa.Table,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        check_identifier(table)
        if data.num_rows == 0:
            return 0
        parts = _slices(data, self.batch_bytes)
        given = dict(settings or {})
        token = given.get("insert_deduplication_token")
        for index, part in enumerate(parts):
            part_settings = dict(given)
            if token and len(parts) > 1:
                # One token per slice: a replay of the same rows slices them alike, so each
                # slice is still stored once.
                part_settings["insert_deduplication_token"] = f"{token}-{index}"
            self._post(
                "insert-arrow",
                f"INSERT INTO {table}",
                params={"table": table, "settings": json.dumps(part_settings)},
                data=_ipc(part),
                headers={"Content-Type": "application/vnd.apache.arrow.stream"},
            )
        return int(data.num_rows)

    def close(self) -> None:
        self.client.close()


def _ipc(data: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return bytes(sink.getvalue().to_pybytes())


def _slices(data: pa.Table, limit: int) -> list[pa.Table]:
    """The table in row slices of at most about ``limit`` bytes each."""
    if data.nbytes <= limit:
        return [data]
    rows = max(1, data.num_rows * limit // max(data.nbytes, 1))
    return [data.slice(start, rows) for start in range(0, data.num_rows, rows)]
