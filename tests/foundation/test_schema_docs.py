"""Users write ad-hoc SQL against these tables: every table and column is documented."""

from __future__ import annotations

import re
from pathlib import Path

from meterhouse.store.base import Store

README = Path(__file__).resolve().parents[2] / "clickhouse" / "schema" / "README.md"


def _documented() -> str:
    return README.read_text()


def test_every_table_and_column_is_in_the_schema_readme(migrated_store: Store) -> None:
    text = _documented()
    tables = migrated_store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND NOT startsWith(name, '.inner') AND engine != 'MaterializedView'"
    ).column("name")
    missing: list[str] = []
    for table in tables:
        if not re.search(rf"\b{re.escape(table)}\b", text):
            missing.append(table)
            continue
        columns = migrated_store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}",
            {"t": table},
        ).column("name")
        missing += [f"{table}.{c}" for c in columns if not re.search(rf"\b{re.escape(c)}\b", text)]
    assert not missing, f"document these in clickhouse/schema/README.md: {missing}"
