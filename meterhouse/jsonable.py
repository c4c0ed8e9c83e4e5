"""JSON for query results: exact Decimals and ISO times survive the trip as strings.

Machine values for programs: numbers as numbers, money (Decimal) as exact decimal strings,
times in ISO 8601 with their offset (UTC when the value has none), a share of something
(``Ratio``) as a fraction and a duration (``Seconds``) as seconds. The CLI's tables show
the same values for people (12.5%, 6h 4m 27s); see meterhouse/cli/output.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from meterhouse.store.base import QueryResult


@dataclass(frozen=True)
class Ratio:
    """A share (0.081 = 8.1 %): a fraction for programs, a percentage for people."""

    value: Decimal

    def machine(self) -> float:
        return float(self.value.quantize(Decimal("0.000001")))


@dataclass(frozen=True)
class Seconds:
    """A duration: seconds for programs, '6h 28m 47s' for people."""

    value: float

    def machine(self) -> float | int:
        rounded = round(float(self.value), 3)
        return int(rounded) if rounded.is_integer() else rounded


def to_jsonable(value: Any) -> Any:
    if isinstance(value, (Ratio, Seconds)):
        return value.machine()
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC).isoformat()  # meterhouse keeps every time in UTC
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
