"""ClickHouse column types to Arrow types, so embedded inserts keep Decimals exact."""

from __future__ import annotations

import re

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Bool": pa.bool_(),
    "Date": pa.date32(),
    "Date32": pa.date32(),
    "DateTime": pa.timestamp("s", tz="UTC"),
}
_WRAPPED = re.compile(r"^(LowCardinality|Nullable|Array)\((.*)\)$")
_DECIMAL = re.compile(r"^Decimal\((\d+),\s*(\d+)\)$")
_DATETIME64 = re.compile(r"^DateTime64\((\d)(?:,\s*'([^']+)')?\)$")
_DATETIME_TZ = re.compile(r"^DateTime\('([^']+)'\)$")
_MAP = re.compile(r"^Map\((\w+(?:\([^()]*\))?),\s*(.*)\)$")
_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def arrow_type(ch_type: str) -> pa.DataType:
    """The Arrow type that carries values of a ClickHouse column type without loss."""
    ch_type = ch_type.strip()
    if ch_type in _SIMPLE:
        return _SIMPLE[ch_type]
    wrapped = _WRAPPED.match(ch_type)
    if wrapped:
        inner = arrow_type(wrapped.group(2))
        return pa.list_(inner) if wrapped.group(1) == "Array" else inner
    decimal = _DECIMAL.match(ch_type)
    if decimal:
        precision, scale = int(decimal.group(1)), int(decimal.group(2))
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    dt64 = _DATETIME64.match(ch_type)
    if dt64:
        return pa.timestamp(_UNITS.get(int(dt64.group(1)), "ns"), tz=dt64.group(2) or "UTC")
    dt_tz = _DATETIME_TZ.match(ch_type)
    if dt_tz:
        return pa.timestamp("s", tz=dt_tz.group(1))
    mapped = _MAP.match(ch_type)
    if mapped:
        return pa.map_(arrow_type(mapped.group(1)), arrow_type(mapped.group(2)))
    if ch_type.startswith(("Enum8", "Enum16", "FixedString", "UUID")):
        return pa.string()
    raise ValueError(f"no Arrow mapping for ClickHouse type {ch_type}")


def arrow_schema_for(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([(name, arrow_type(ch_type)) for name, ch_type in columns])
