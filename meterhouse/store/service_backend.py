"""Read-only backend: the store of a running `meterhouse run`, through its /api/v1/sql.

chdb lets one process own a data directory. While the service runs, CLI commands that
only read send their SELECTs to its admin endpoint /api/v1/sql (read-only,
bounded by MH_SQL_MAX_ROWS and MH_SQL_MAX_SECONDS) instead of opening the store. The
endpoint takes SQL text only, so ``{name:Type}`` parameters are inlined as escaped,
typed literals; values come back as JSON and are turned back into the Python types the
local backends return (datetime, Decimal), by column type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests
from clickhouse_connect.driver.binding import format_query_value

from meterhouse.errors import StoreError, StoreUnavailableError
from meterhouse.jsonable import result_from_json
from meterhouse.store.base import (
    Capabilities,
    Columns,
    QueryResult,
    Store,
    check_identifier,
    normalize_param,
)

_PARAM = re.compile(r"\{(\w+):([^{}]+)\}")
_INTEGER = re.compile(r"^U?Int(8|16|32|64|128|256)$")


def inline_params(sql: str, params: Mapping[str, Any] | None) -> str:
    """Replace each ``{name:Type}`` with a literal of that type (quoted and escaped by
    clickhouse-connect's client-side binding, so values cannot break out of it)."""
    values = params or {}

    def literal(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2).strip()
        if name not in values:
            raise StoreError(f"query parameter {name!r} has no value")
        value = values[name]
        if _INTEGER.match(kind):
            # Typed as the placeholder says, as the server binds it (LIMIT takes it too).
            return f"CAST({int(value)} AS {kind})"
        return f"CAST({format_query_value(normalize_param(value))} AS {kind})"

    return _PARAM.sub(literal, sql)


def _strip(kind: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        while kind.startswith(wrapper):
            kind = kind[len(wrapper) : -1]
    return kind


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
    if base.startswith("Array(") and isinstance(value, list):
        return [from_json(item, base[len("Array(") : -1]) for item in value]
    return value


class ServiceStore(Store):
    """A read-only Store over a running service's /api/v1/sql."""

    def __init__(self, url: str, token: str, *, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.database = "(service)"
        self.capabilities = Capabilities(writes=False, access_management=False)
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        text = inline_params(sql, params)
        if settings:
            text += "\nSETTINGS " + ", ".join(
                f"{check_identifier(k)} = {int(v) if isinstance(v, bool) else v!r}"
                for k, v in settings.items()
            )
        try:
            answer = self._session.post(
                f"{self.url}/api/v1/sql", json={"sql": text}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise StoreUnavailableError(
                f"the store is held by `meterhouse run` at {self.url}, which did not answer: {exc}"
            ) from exc
        if answer.status_code != 200:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text
            raise StoreError(f"{self.url} refused the query ({answer.status_code}): {detail}")
        result = result_from_json(answer.json())
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
        raise StoreError("the service's SQL endpoint is used read-only here")

    def insert(
        self, table: str, columns: Columns, *, settings: Mapping[str, Any] | None = None
    ) -> int:
        raise StoreError("the service's SQL endpoint is used read-only here")

    def insert_arrow(
        self, table: str, data: Any, *, settings: Mapping[str, Any] | None = None
    ) -> int:
        raise StoreError("the service's SQL endpoint is used read-only here")

    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> Any:
        """The rows of ``query`` as Arrow, typed from the column types the service sent."""
        import pyarrow as pa

        from meterhouse.store.arrow_types import arrow_type

        result = self.query(sql, params, settings=settings)
        return pa.table(
            {
                name: pa.array(result.column(name), type=arrow_type(kind))
                for name, kind in zip(result.column_names, result.column_types, strict=True)
            }
        )

    def close(self) -> None:
        self._session.close()
