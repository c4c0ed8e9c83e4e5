"""Embedded backend: the real ClickHouse engine in this process, through chdb.

chdb lets one process own a data directory, and one data directory per process. A second
process that opens the same directory gets ``StoreLockedError`` naming the owner and,
when the owner is ``meterhouse run``, the URL to ask instead (from the owner file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import chdb.session
import pyarrow as pa

from meterhouse.errors import StoreError, StoreLockedError
from meterhouse.store.base import (
    OWNER_FILE,
    Capabilities,
    QueryResult,
    check_identifier,
    param_text,
)
from meterhouse.store.described_insert import DescribedInsert
from meterhouse.store.native import decode_native
from meterhouse.store.wire import ARROW_OUTPUT, parse_engine_error, read_arrow_stream


def chdb_path(url: str) -> Path:
    """`chdb:///abs/dir` -> /abs/dir, `chdb://rel/dir` -> rel/dir (relative to the cwd)."""
    raw = url.removeprefix("chdb://")
    if not raw:
        raise ValueError("chdb URL needs a directory, e.g. chdb:///var/lib/meterhouse")
    return Path(raw).expanduser().resolve()


def read_owner(data_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((data_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ChdbStore(DescribedInsert):
    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = check_identifier(database)
        self.path = chdb_path(url)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Billing data: readable by the owner only (the engine creates files under umask).
        os.chmod(self.path, 0o700)
        os.umask(0o077)
        self.capabilities = Capabilities(data_dir=self.path, access_management=False)
        # chdb's session is not safe for concurrent calls from several threads.
        self._lock = threading.Lock()
        with _captured_stderr() as engine_said:
            try:
                self._session = chdb.session.Session(str(self.path))  # type: ignore[no-untyped-call]
            except Exception as exc:  # chdb raises RuntimeError with part of the engine's text
                raise self._open_error(f"{exc} {engine_said()}") from exc
        self._run(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._run(f"USE {self.database}")

    def _open_error(self, text: str) -> StoreError:
        if "Cannot lock file" in text or "already running" in text or _status_locked(self.path):
            owner = read_owner(self.path)
            pid = owner.get("pid")
            service_url = str(owner.get("service_url", ""))
            who = (
                f"process {pid}" if isinstance(pid, int) and _pid_alive(pid) else "another process"
            )
            hint = (
                f" `meterhouse run` owns it and serves {service_url}: other meterhouse "
                "commands use the store through that service by themselves."
                if service_url
                else " Stop that process, or point MH_CLICKHOUSE_URL at another directory."
            )
            return StoreLockedError(
                f"The embedded ClickHouse data directory {self.path} is in use by {who}; "
                f"one process owns it at a time.{hint}",
                owner_pid=pid if isinstance(pid, int) else None,
                service_url=service_url,
            )
        if "already initialized with path" in text:
            return StoreError(
                f"This process already runs the embedded engine on another data directory; "
                f"chdb allows one directory per process (asked for {self.path}).",
                code=36,
                name="BAD_ARGUMENTS",
            )
        return parse_engine_error(text)

    def _run(
        self,
        sql: str,
        fmt: str = "Native",
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        **python_tables: pa.Table,
    ) -> bytes:
        text_params = {k: param_text(v) for k, v in (params or {}).items()}
        if settings:
            sql = _with_settings(sql, settings)
        with self._lock:
            try:
                if python_tables:
                    result = _query_with_tables(self._session, sql, fmt, text_params, python_tables)
                else:
                    result = self._session.query(sql, fmt, params=text_params or None)  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise parse_engine_error(str(exc), sql) from exc
        return bytes(result.bytes()) if result is not None else b""

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        return decode_native(self._run(sql, "Native", params, settings))

    def command(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._run(sql, "Native", params, settings)

    def insert_arrow(
        self,
        table: str,
        data: pa.Table,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        if data.num_rows == 0:
            return 0
        names = ", ".join(f"`{check_identifier(name)}`" for name in data.column_names)
        # The engine reads the Arrow buffers themselves: no Python object per value.
        self._run(
            f"INSERT INTO {check_identifier(table)} ({names}) SELECT * FROM Python(__mh_batch)",
            settings=settings,
            __mh_batch=data,
        )
        return int(data.num_rows)

    def query_arrow(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        raw = self._run(sql, "ArrowStream", params, {**ARROW_OUTPUT, **(settings or {})})
        return read_arrow_stream(raw)

    def release_memory(self) -> None:
        # The embedded engine's allocator keeps freed insert buffers (about 200 MB after
        # large drains) in this process unless told to return them.
        self._run("SYSTEM JEMALLOC PURGE")

    def close(self) -> None:
        with self._lock:
            self._session.close()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """The engine writes some open errors straight to fd 2; keep them for our own message."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: _read_all(sink)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _read_all(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _status_locked(path: Path) -> bool:
    """ClickHouse holds an exclusive lock on <dir>/status while it runs."""
    status = path / "status"
    if not status.exists():
        return False
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _query_with_tables(
    session: chdb.session.Session,
    sql: str,
    fmt: str,
    params: Mapping[str, str],
    tables: Mapping[str, pa.Table],
) -> Any:
    # The names must be locals of the frame that calls session.query.
    __mh_batch = tables.get("__mh_batch")
    return session.query(sql, fmt, params=dict(params) or None)  # type: ignore[no-untyped-call]


_INSERT_DATA = re.compile(r"^(\s*INSERT\s.*?)(\bVALUES\b|\bFORMAT\s+\w+)", re.I | re.S)


def _with_settings(sql: str, settings: Mapping[str, Any]) -> str:
    """Settings for this statement only, as a SETTINGS clause where the parser expects it.

    After INSERT's data keyword everything is data, so there the clause goes before it.
    """
    clause = "SETTINGS " + ", ".join(
        f"{check_identifier(k)} = {_setting_literal(v)}" for k, v in settings.items()
    )
    insert = _INSERT_DATA.match(sql)
    if insert:
        return f"{insert.group(1)}{clause} {sql[insert.start(2) :]}"
    return f"{sql}\n{clause}"


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
