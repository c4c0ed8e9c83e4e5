"""What both backends read from the engine: its error text and its Arrow answers.

Kept apart from the backends so the server backend never imports the embedded engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from meterhouse.errors import StoreError

# Arrow results as a server gives them to clickhouse-connect's query_arrow: strings as
# Arrow strings (not binary), LowCardinality as plain values.
ARROW_OUTPUT: Mapping[str, Any] = {
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
}

_CODE = re.compile(r"Code: (\d+)\. DB::Exception: (.*)", re.S)
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")


def parse_engine_error(text: str, sql: str = "") -> StoreError:
    """Turn ClickHouse's 'Code: N. DB::Exception: ... (NAME)' text into a StoreError."""
    found = _CODE.search(text)
    if not found:
        return StoreError(text.strip() or "ClickHouse failed without a message", sql=sql)
    code, message = int(found.group(1)), found.group(2).strip()
    names = _NAME.findall(message)
    name = names[-1] if names else ""
    message = re.sub(r"\s*\(version [^)]*\)\s*$", "", message)
    return StoreError(f"ClickHouse error {code} ({name}): {message}", code=code, name=name, sql=sql)


def read_arrow_stream(raw: bytes) -> pa.Table:
    """An ArrowStream answer as one table (an empty answer is an empty table)."""
    if not raw:
        return pa.table({})
    with pa.ipc.open_stream(raw) as reader:
        return reader.read_all()
