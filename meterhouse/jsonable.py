"""JSON for query results: exact Decimals and ISO times survive the trip as strings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from meterhouse.store.base import QueryResult


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
        )
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def result_to_json(result: QueryResult) -> dict[str, Any]:
    return {
        "columns": list(result.column_names),
        "types": list(result.column_types),
        "rows": [[to_jsonable(v) for v in row] for row in result.rows],
    }


def result_from_json(payload: dict[str, Any]) -> QueryResult:
    return QueryResult(
        column_names=tuple(payload["columns"]),
        column_types=tuple(payload["types"]),
        rows=[tuple(row) for row in payload["rows"]],
    )
