"""The row-dict type of ``ClickHouseWriter.write``, which nothing in production calls.

Rows are built column-wise by meterhouse/processing/columns.py; this alias only remains
until ``ClickHouseWriter.write`` is deleted (then delete this module too).
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]
