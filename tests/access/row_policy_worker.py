"""Run generated row-policy expressions as REAL row policies on the embedded engine.

chdb refuses CREATE ROW POLICY (it has no writable access storage) and cannot switch
users, but it loads users.xml, whose ``<databases><db><table><filter>`` entries are row
policies of that user. So this worker, in its own process (chdb allows one engine per
process), gives the default user one policy per table, creates the schema, inserts rows
of several tenants, and returns what the engine lets that user read:

    python -m tests.access.row_policy_worker < spec.json > result.json

spec: {"dir": scratch dir, "database": name, "filters": {table: USING expression}}
result: {table: [[account_id, team_id or null, project_id or null], ...]}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import chdb

from meterhouse.store.migrations import Topology, load_migrations, render_migration
from tests.access.tenant_rows import SCOPE_COLUMNS, insert_statements


def users_xml(database: str, filters: dict[str, str]) -> str:
    tables = "".join(
        f"<{table}><filter>{escape(condition)}</filter></{table}>"
        for table, condition in sorted(filters.items())
    )
    return (
        "<clickhouse><users><default><password></password>"
        "<networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>"
        f"<databases><{database}>{tables}</{database}></databases>"
        "</default></users><profiles><default/></profiles><quotas><default/></quotas>"
        "</clickhouse>"
    )


def run(spec: dict[str, Any]) -> dict[str, list[list[str | None]]]:
    root = Path(spec["dir"])
    database = spec["database"]
    (root / "users.xml").write_text(users_xml(database, spec["filters"]))
    (root / "config.xml").write_text(
        f"<clickhouse><users_config>{root / 'users.xml'}</users_config></clickhouse>"
    )
    connection = chdb.connect(f"file:{root / 'data'}?config-file={root / 'config.xml'}")
    cursor = connection.cursor()
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    cursor.execute(f"USE {database}")
    migrations = load_migrations()
    for migration in migrations:
        for statement in render_migration(migration, Topology(), migrations):
            cursor.execute(statement)
    cursor.execute(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
    )
    columns: dict[str, dict[str, str]] = {}
    for table, name, kind in cursor.fetchall():
        columns.setdefault(table, {})[name] = kind
    cursor.execute("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
    engines = dict(cursor.fetchall())
    for statement in insert_statements(columns, engines):
        cursor.execute(statement)
    seen: dict[str, list[list[str | None]]] = {}
    for table in spec["filters"]:
        present = [c for c in SCOPE_COLUMNS if c in columns[table]]
        cursor.execute(f"SELECT {', '.join(present)} FROM {table}")
        seen[table] = [
            [dict(zip(present, row, strict=True)).get(c) for c in SCOPE_COLUMNS]
            for row in cursor.fetchall()
        ]
    cursor.close()
    connection.close()
    return seen


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
