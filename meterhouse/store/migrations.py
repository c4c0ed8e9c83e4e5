"""Numbered, forward-only schema migrations from clickhouse/schema/NNNN_name.sql.

Each file is a list of idempotent statements (``IF NOT EXISTS``). ``migrate`` applies the
files not yet recorded in ``schema_migrations`` in order and records each with its SHA-256;
a file whose content changed after it was applied is refused, because its tables already
exist in the old shape and a forward migration must say how to change them.

The same files serve one node and a cluster. With a cluster name, ``render`` rewrites each
statement: ``ON CLUSTER``, Replicated engines, and, when sharded, a ``<table>_local``
table per MergeTree table behind a Distributed table of the original name (materialized
views then read and write the local tables, so each shard rolls up its own rows).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meterhouse.errors import MigrationError, StoreError
from meterhouse.store.base import Store

MIGRATIONS_TABLE = "schema_migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE = re.compile(
    r"^(CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+IF\s+NOT\s+EXISTS\s+)(\w+)", re.I
)
_COLUMN_CHANGE = re.compile(r"\b(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_ALTER = re.compile(r"^(ALTER\s+TABLE\s+)(\w+)", re.I)
_DROP = re.compile(r"^(DROP\s+(?:TABLE|VIEW)\s+IF\s+EXISTS\s+)(\w+)\s*$", re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree\b", re.I)


def schema_dir() -> Path:
    """clickhouse/schema/, shipped inside the package as meterhouse/store/schema/.

    In the source tree that folder is a symlink to clickhouse/schema/ (resolved, so callers
    see the real checkout); a built wheel carries copies of the files, so `migrate` works
    from any directory.
    """
    packaged = Path(__file__).resolve().with_name("schema")
    if packaged.is_dir():
        return packaged.resolve()
    raise MigrationError(
        f"cannot find the SQL migrations in {packaged}; reinstall meterhouse "
        "(pip install --force-reinstall meterhouse, or pip install -e . in a checkout)"
    )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True)
class Topology:
    """Where the tables live: one node (cluster == ''), replicated, or sharded too."""

    cluster: str = ""
    sharded: bool = False


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or schema_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number in {directory}")
    return found


def split_statements(sql: str) -> list[str]:
    """Statements of a file: comments dropped, split at a ';' that ends a line."""
    lines = [line.split("--", 1)[0].rstrip() for line in sql.splitlines()]
    text = "\n".join(lines)
    return [part.strip() for part in re.split(r";\s*(?:\n|$)", text) if part.strip()]


def _mergetree_tables(statements: list[str]) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        created = _CREATE.match(statement)
        if created and _ENGINE.search(statement) and "TABLE" in created.group(1).upper():
            names.add(created.group(2))
    return names


def render(statements: list[str], topology: Topology, local_tables: set[str]) -> list[str]:
    """Rewrite statements for a cluster; unchanged for one node."""
    if not topology.cluster:
        return statements
    on_cluster = f" ON CLUSTER '{topology.cluster}'"
    rendered: list[str] = []
    for statement in statements:
        dropped = _DROP.match(statement)
        if dropped:
            name = dropped.group(2)
            if topology.sharded and name in local_tables:
                # The Distributed table first, then the shards' tables behind it.
                rendered.append(f"{dropped.group(1)}{name}{on_cluster} SYNC")
                rendered.append(f"{dropped.group(1)}{name}_local{on_cluster} SYNC")
            else:
                rendered.append(f"{dropped.group(1)}{name}{on_cluster} SYNC")
            continue
        altered = _ALTER.match(statement)
        if altered:
            name = altered.group(2)
            rest = statement[altered.end() :]
            sharded = topology.sharded and name in local_tables
            target = f"{name}_local" if sharded else name
            rendered.append(f"{altered.group(1)}{target}{on_cluster}{rest}")
            if sharded and _COLUMN_CHANGE.search(rest):
                # The Distributed table over the shards must show the same columns.
                rendered.append(f"{altered.group(1)}{name}{on_cluster}{rest}")
            continue
        created = _CREATE.match(statement)
        if not created:
            rendered.append(statement)
            continue
        name = created.group(2)
        is_table = bool(_ENGINE.search(statement)) and "TABLE" in created.group(1).upper()
        body = statement[created.end() :]
        if topology.sharded:
            body = _to_local_refs(body, local_tables, is_view=not is_table)
        body = _ENGINE.sub(lambda m: f"ENGINE = Replicated{m.group(1)}MergeTree", body)
        if is_table and topology.sharded:
            local = f"{name}_local"
            rendered.append(f"{created.group(1)}{local}{on_cluster}{body}")
            key = "cityHash64(account_id)" if re.search(r"\baccount_id\b", body) else "rand()"
            rendered.append(
                f"{created.group(1)}{name}{on_cluster} AS {local} "
                f"ENGINE = Distributed('{topology.cluster}', currentDatabase(), {local}, {key})"
            )
        else:
            rendered.append(f"{created.group(1)}{name}{on_cluster}{body}")
    return rendered


def _to_local_refs(body: str, local_tables: set[str], *, is_view: bool) -> str:
    """Materialized views read and write the shard-local tables."""
    if not is_view or not re.match(r"\s+TO\s+", body, re.I):
        return body
    for table in local_tables:
        body = re.sub(rf"\b(TO|FROM)\s+{table}\b", rf"\1 {table}_local", body)
    return body


def render_migration(
    migration: Migration, topology: Topology, all_migrations: list[Migration] | None = None
) -> list[str]:
    """A migration's statements for a topology; ALTERs may name tables of earlier files."""
    tables: set[str] = set()
    for other in all_migrations or [migration]:
        tables |= _mergetree_tables(other.statements())
    return render(migration.statements(), topology, tables)


def _ensure_table(store: Store, topology: Topology) -> None:
    on_cluster = f" ON CLUSTER '{topology.cluster}'" if topology.cluster else ""
    engine = "ReplicatedMergeTree" if topology.cluster else "MergeTree"
    store.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}{on_cluster} ("
        "version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        f") ENGINE = {engine} ORDER BY version"
    )


def applied(store: Store) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in the store."""
    result = store.query(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version")
    return {int(row[0]): (str(row[1]), str(row[2])) for row in result.rows}


def pending(store: Store, migrations: list[Migration]) -> list[Migration]:
    recorded_versions = applied(store)
    todo: list[Migration] = []
    for migration in migrations:
        recorded = recorded_versions.get(migration.version)
        if recorded is None:
            todo.append(migration)
            continue
        if recorded[1] != migration.checksum:
            raise MigrationError(
                f"{migration.path.name} changed after it was applied (recorded sha256 "
                f"{recorded[1][:12]}…, file now {migration.checksum[:12]}…). Applied migrations "
                "are never edited: restore the file and add a new, higher-numbered migration "
                "for the change."
            )
    return todo


def migrate(
    store: Store,
    *,
    topology: Topology | None = None,
    directory: Path | None = None,
    job_log_ttl_days: int | None = None,
    progress: Callable[[Migration], None] | None = None,
) -> list[Migration]:
    """Apply what is pending; return the migrations applied now (empty when up to date)."""
    topology = topology or Topology()
    migrations = load_migrations(directory)
    _ensure_table(store, topology)
    todo = pending(store, migrations)
    for migration in todo:
        if progress:
            progress(migration)
        for statement in render_migration(migration, topology, migrations):
            try:
                store.command(statement)
            except StoreError as exc:
                raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
        store.insert(
            MIGRATIONS_TABLE,
            {
                "version": [migration.version],
                "name": [migration.name],
                "checksum": [migration.checksum],
            },
        )
    if job_log_ttl_days is not None:
        apply_job_log_ttl(store, job_log_ttl_days, topology)
    return todo


def apply_job_log_ttl(store: Store, days: int, topology: Topology) -> bool:
    """Make job_logs' TTL match the setting; True when it was changed.

    The new TTL is materialized at once, so a shorter retention also drops logs already
    stored (on a large table that rewrites parts: it runs only when the setting changed).
    """
    table = "job_logs_local" if topology.sharded else "job_logs"
    current = store.query(
        "SELECT engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    ).scalar()
    if current is None or f"toIntervalDay({int(days)})" in str(current):
        return False
    on_cluster = f" ON CLUSTER '{topology.cluster}'" if topology.cluster else ""
    store.command(
        f"ALTER TABLE {table}{on_cluster} "
        f"MODIFY TTL toDateTime(log_time) + INTERVAL {int(days)} DAY",
        settings={"mutations_sync": 2},
    )
    return True
