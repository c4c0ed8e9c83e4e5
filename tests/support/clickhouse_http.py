"""A test-only ClickHouse HTTP interface that runs every request on chdb, the real engine.

No ClickHouse server can be installed where the tests run, so ``ServerStore`` (which talks
HTTP through clickhouse-connect) is tested against this shim instead: clickhouse-connect
sends exactly what it would send to a server, and the statements run on the same
ClickHouse engine that ``ChdbStore`` embeds.

It speaks the part of the HTTP interface that clickhouse-connect 1.x uses:

* ``GET /ping`` and ``GET /`` answer ``Ok.``;
* the statement comes from the ``query`` URL argument, the body, or both (the body then
  continues the statement, as on a server); multipart form bodies (``query`` and
  ``param_*`` fields) are accepted too;
* ``INSERT ... FORMAT <fmt>`` followed by data (in the body, after the statement or after
  the ``query`` argument) is streamed into chdb with ``Connection.send_insert``;
* ``param_<name>`` arguments bind ``{name:Type}`` placeholders;
* ``database`` selects the current database; ``session_id`` keeps a chdb connection (and so
  USE, SET and temporary tables) across requests; every other argument that is not a
  transport argument is a setting, applied with one ``SET`` before the statement, so that
  ``readonly=1`` with other settings behaves as on a server;
* one user (``default`` with an empty password unless told otherwise) is accepted, by Basic
  auth, ``X-ClickHouse-User``/``-Key`` headers or ``user``/``password`` arguments; anything
  else is error 516, AUTHENTICATION_FAILED;
* request bodies may be compressed (``Content-Encoding`` lz4, zstd, gzip, deflate, br when
  available); responses are compressed when ``enable_http_compression`` is on (chdb's default
  is 1, unlike a server's) and the client accepts lz4, zstd, gzip or deflate;
* errors come back like a server's: an HTTP error status, the header
  ``X-ClickHouse-Exception-Code`` and the body ``Code: N. DB::Exception: ... (NAME)
  (version V)``;
* the headers ``X-ClickHouse-Format``, ``X-ClickHouse-Timezone``, ``X-ClickHouse-Query-Id``
  and ``X-ClickHouse-Summary`` are sent.

Not supported (an error with code 48, NOT_IMPLEMENTED, is returned): external data
tables, ClickHouse's own block compression (``compress=1`` / ``decompress=1``), parameters in
``INSERT ... FORMAT`` with data.
``client_protocol_version`` is ignored: chdb writes Native without block info, so
clickhouse-connect's protocol probe fails and it uses protocol 0, decoding exactly the bytes
that ``ChdbStore`` decodes (chdb keeps LowCardinality types in Native either way). Settings
and ``database`` sent with a ``session_id`` stay set in that session (a server applies them
to the one query); sessions never expire; requests run one at a time.

chdb allows one data directory per process and one process per directory, so the shim runs
in its own process that owns its own directory::

    python -m tests.support.clickhouse_http --data DIR [--port 0] [--exit-with-parent]

prints ``LISTENING http://127.0.0.1:PORT`` once it accepts requests. ``ShimProcess`` starts
it, waits for that line within a time-out and always stops it.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import gzip
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chdb.state.sqlitelike import connect as chdb_connect

try:
    import lz4.frame as lz4_frame
except ImportError:  # clickhouse-connect then does not offer lz4 either
    lz4_frame = None
try:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
except ImportError:
    zstd = None
try:
    import brotli
except ImportError:
    brotli = None

# Codes of the errors the shim raises itself.
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
UNKNOWN_SETTING = 115
SESSION_NOT_FOUND = 372
AUTHENTICATION_FAILED = 516
STD_EXCEPTION = 1001

_CODE_NAMES = {
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    STD_EXCEPTION: "STD_EXCEPTION",
}

# A subset of ClickHouse's exceptionCodeToHTTPStatus; every other code is a 500.
_HTTP_STATUS = {
    **dict.fromkeys((53, 62, 117, 167, 168, 223, 321), 400),  # bad query or data
    **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 81, 115, 336), 404),  # unknown thing
    **dict.fromkeys((164, 192, 193, 516, 535), 403),  # readonly, prohibited, bad user
    194: 401,  # REQUIRED_PASSWORD
    48: 501,  # NOT_IMPLEMENTED
}

# URL arguments the HTTP interface handles itself; anything else (but param_*) is a setting.
_TRANSPORT_ARGS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "stacktrace",
        "role",
    }
)

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENGINE_ERROR = re.compile(r"Code: (\d+)\. DB::Exception: (.*)", re.S)
_NESTED_CODE = re.compile(r"^(?:Code: \d+\. DB::Exception: )+")
_VERSION_TRAILER = re.compile(r"\(version [^)]*\)\s*$")
_FORMAT_TAIL = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*\Z", re.I)
_INSERT_WITH_DATA = re.compile(
    rb"\A\s*(INSERT\s+INTO\s.*?)\s+FORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?", re.I | re.S
)
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*\n?|/\*.*?\*/)*", re.S)
_RESULT_STATEMENT = re.compile(
    r"(?:\(\s*)*(SELECT|WITH|SHOW|DESC|DESCRIBE|EXISTS|EXPLAIN|CHECK|VALUES)\b", re.I
)
_CONTENT_TYPES = {
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "RowBinaryWithNamesAndTypes": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "ArrowStream": "application/octet-stream",
    "Parquet": "application/octet-stream",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}
LISTENING_PREFIX = "LISTENING "


class ClickHouseError(Exception):
    """An error answered as ClickHouse would: numeric code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def engine_error(exc: BaseException) -> ClickHouseError:
    """chdb's exception text ('Code: N. DB::Exception: ...', sometimes nested) as an error."""
    if isinstance(exc, ClickHouseError):
        return exc
    text = str(exc)
    found = _ENGINE_ERROR.search(text)
    if not found:
        return ClickHouseError(STD_EXCEPTION, f"{text.strip() or type(exc).__name__}")
    message = _NESTED_CODE.sub("", found.group(2).strip())
    return ClickHouseError(int(found.group(1)), message)


def error_body(error: ClickHouseError, version: str) -> str:
    message = error.message
    name = _CODE_NAMES.get(error.code)
    if name and f"({name})" not in message:
        message = f"{message} ({name})"
    if not _VERSION_TRAILER.search(message):
        message = f"{message} (version {version})"
    return f"Code: {error.code}. DB::Exception: {message}\n"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass
class ShimRequest:
    """One HTTP request, reduced to what the engine needs."""

    method: str
    args: dict[str, str]
    body: bytes
    accept_encoding: str = ""


@dataclass
class Statement:
    """What to run: SQL (without FORMAT when it carries data), format, parameters, data."""

    sql: str
    fmt: str
    params: dict[str, str]
    insert_data: bytes | None


@dataclass
class ShimResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


_COMPRESSORS: dict[str, Any] = {
    name: function
    for name, function in (
        ("lz4", lz4_frame and lz4_frame.compress),
        ("zstd", zstd and zstd.compress),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
    )
    if function is not None
}
_DECOMPRESSORS: dict[str, Any] = {
    name: function
    for name, function in (
        ("lz4", lz4_frame and lz4_frame.decompress),
        ("zstd", zstd and zstd.decompress),
        ("br", brotli and brotli.decompress),
        ("gzip", gzip.decompress),
        ("deflate", zlib.decompress),
    )
    if function is not None
}


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return data
    if encoding not in _DECOMPRESSORS:
        raise ClickHouseError(NOT_IMPLEMENTED, f"Unknown HTTP content encoding {encoding!r}")
    try:
        return bytes(_DECOMPRESSORS[encoding](data))
    except Exception as exc:
        raise ClickHouseError(BAD_ARGUMENTS, f"Cannot decode {encoding} body: {exc}") from exc


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bool]:
    """The text fields of a multipart/form-data body, and whether it held files."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    has_files = False
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            has_files = True
            continue
        if name:
            payload = part.get_payload(decode=True) or b""
            fields[str(name)] = payload.decode("utf-8")
    return fields, has_files


class ChdbHTTPEngine:
    """Runs HTTP requests on chdb connections to one data directory."""

    def __init__(self, data_dir: str | Path, *, user: str = "default", password: str = "") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        # The anchor connection keeps the engine up while request connections come and go.
        self._anchor = chdb_connect(str(self.data_dir))
        version_tz = bytes(self._anchor.query("SELECT version(), timezone()", "TSV").bytes())
        self.version, self.timezone = version_tz.decode().strip().split("\t")
        # chdb's default is 1 (a server's is 0), so clickhouse-connect does not send it.
        compression = self._anchor.query("SELECT getSetting('enable_http_compression')", "TSV")
        self.http_compression_default = bytes(compression.bytes()).decode().strip()
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}

    def close(self) -> None:
        with self._lock:
            for connection in self._sessions.values():
                connection.close()
            self._sessions.clear()
            self._anchor.close()

    # -- request handling -------------------------------------------------------------

    def handle(self, request: ShimRequest, headers: Mapping[str, str]) -> ShimResponse:
        query_id = request.args.get("query_id") or str(uuid.uuid4())
        base_headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.timezone,
            "X-ClickHouse-Server-Display-Name": "chdb-http-shim",
        }
        try:
            self._authenticate(request, headers)
            response = self._execute(request)
        except ClickHouseError as error:
            return ShimResponse(
                _HTTP_STATUS.get(error.code, 500),
                error_body(error, self.version).encode(),
                {
                    **base_headers,
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(error.code),
                },
            )
        response.headers = {**base_headers, **response.headers}
        return self._compress(request, response)

    def _authenticate(self, request: ShimRequest, headers: Mapping[str, str]) -> None:
        user = headers.get("X-ClickHouse-User") or request.args.get("user")
        password = headers.get("X-ClickHouse-Key") or request.args.get("password") or ""
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                decoded = base64.b64decode(auth[6:]).decode()
            except ValueError as exc:
                raise ClickHouseError(AUTHENTICATION_FAILED, "Malformed Basic credentials") from exc
            user, _, password = decoded.partition(":")
        user = user or "default"
        if user != self.user or password != self.password:
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name.",
            )

    def _statement(self, request: ShimRequest) -> Statement:
        """The statement of a request: the ``query`` argument, then a newline, then the body."""
        args = request.args
        if args.get("compress") in ("1", "true") or args.get("decompress") in ("1", "true"):
            raise ClickHouseError(
                NOT_IMPLEMENTED, "The test shim does not support ClickHouse block compression"
            )
        params = {k.removeprefix("param_"): v for k, v in args.items() if k.startswith("param_")}
        head = args.get("query", "")
        full = (head + "\n").encode() + request.body if head else request.body
        insert = _INSERT_WITH_DATA.match(full)
        if insert:
            if params:
                raise ClickHouseError(
                    NOT_IMPLEMENTED, "The test shim cannot bind parameters in INSERT ... FORMAT"
                )
            return Statement(
                sql=insert.group(1).decode("utf-8"),
                fmt=insert.group(2).decode(),
                params={},
                insert_data=full[insert.end() :],
            )
        try:
            sql = full.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClickHouseError(BAD_ARGUMENTS, "The query is not valid UTF-8") from exc
        if not sql.strip():
            raise ClickHouseError(BAD_ARGUMENTS, "Empty query")
        tail = _FORMAT_TAIL.search(sql)
        fmt = tail.group(1) if tail else args.get("default_format") or "TabSeparated"
        return Statement(sql=sql, fmt=fmt, params=params, insert_data=None)

    def _settings(self, request: ShimRequest) -> dict[str, str]:
        settings = {
            k: v
            for k, v in request.args.items()
            if k not in _TRANSPORT_ARGS and not k.startswith("param_")
        }
        if request.method == "GET" and not request.args.get("session_id"):
            # A server runs GET requests read-only; in a session that SET would stick.
            settings.setdefault("readonly", "2")
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError(UNKNOWN_SETTING, f"Unknown setting {name!r}")
        return settings

    def _connection(self, request: ShimRequest) -> tuple[Any, bool]:
        """A chdb connection for the request and whether to close it afterwards."""
        session_id = request.args.get("session_id")
        if not session_id:
            return chdb_connect(str(self.data_dir)), True
        if session_id not in self._sessions:
            if request.args.get("session_check") in ("1", "true"):
                raise ClickHouseError(
                    SESSION_NOT_FOUND, f"Session {session_id} not found (SESSION_NOT_FOUND)"
                )
            self._sessions[session_id] = chdb_connect(str(self.data_dir))
        return self._sessions[session_id], False

    def _execute(self, request: ShimRequest) -> ShimResponse:
        statement = self._statement(request)
        settings = self._settings(request)
        with self._lock:
            connection, temporary = self._connection(request)
            try:
                return self._run(connection, request.args.get("database"), statement, settings)
            finally:
                if temporary:
                    connection.close()
                elif request.args.get("close_session") in ("1", "true"):
                    self._sessions.pop(request.args.get("session_id", ""), None)
                    connection.close()

    @staticmethod
    def _run(
        connection: Any, database: str | None, statement: Statement, settings: dict[str, str]
    ) -> ShimResponse:
        started = time.monotonic_ns()
        try:
            if database:
                connection.query(f"USE {_quote_identifier(database)}", "TSV")
            if settings:
                assignments = ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items())
                connection.query(f"SET {assignments}", "TSV")
            if statement.insert_data is not None:
                with connection.send_insert(statement.sql, statement.fmt) as inserter:
                    if statement.insert_data:
                        inserter.append(statement.insert_data)
                    written = inserter.finish()
                rows, size, payload = written.rows_written, written.bytes_written, b""
                read_rows = read_bytes = 0
            else:
                result = connection.query(
                    statement.sql, statement.fmt, params=statement.params or None
                )
                payload = bytes(result.bytes()) if result is not None else b""
                rows, size = result.rows_written(), result.bytes_written()
                read_rows, read_bytes = result.rows_read(), result.bytes_read()
        except Exception as exc:
            raise engine_error(exc) from exc
        summary = {
            "read_rows": str(read_rows),
            "read_bytes": str(read_bytes),
            "written_rows": str(rows),
            "written_bytes": str(size),
            "total_rows_to_read": str(read_rows),
            "result_rows": str(rows or read_rows),
            "result_bytes": str(len(payload) or size),
            "elapsed_ns": str(time.monotonic_ns() - started),
        }
        headers = {"X-ClickHouse-Summary": json.dumps(summary)}
        text = _LEADING_COMMENTS.sub("", statement.sql, count=1)
        if statement.insert_data is None and (payload or _RESULT_STATEMENT.match(text)):
            headers["X-ClickHouse-Format"] = statement.fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(
                statement.fmt, "text/tab-separated-values; charset=UTF-8"
            )
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        return ShimResponse(200, payload, headers)

    def _compress(self, request: ShimRequest, response: ShimResponse) -> ShimResponse:
        enabled = request.args.get("enable_http_compression", self.http_compression_default)
        if enabled not in ("1", "true") or not response.body:
            return response
        accepted = [e.split(";")[0].strip().lower() for e in request.accept_encoding.split(",")]
        for encoding in accepted:
            if encoding in _COMPRESSORS:
                response.body = bytes(_COMPRESSORS[encoding](response.body))
                response.headers["Content-Encoding"] = encoding
                break
        return response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ShimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, response: ShimResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        engine = self.server.engine
        if parts.path.rstrip("/") == "/ping":
            self._send(ShimResponse(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"}))
            return
        args = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body = _decompress(body, self.headers.get("Content-Encoding", ""))
            content_type = self.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                fields, has_files = _parse_multipart(content_type, body)
                if has_files:
                    raise ClickHouseError(
                        NOT_IMPLEMENTED, "The test shim does not support external data"
                    )
                args.update(fields)
                body = b""
        except ClickHouseError as error:
            self._send(
                ShimResponse(
                    _HTTP_STATUS.get(error.code, 500),
                    error_body(error, engine.version).encode(),
                    {"X-ClickHouse-Exception-Code": str(error.code)},
                )
            )
            return
        if self.command == "GET" and not args.get("query"):
            self._send(ShimResponse(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"}))
            return
        request = ShimRequest(
            self.command, args, body, accept_encoding=self.headers.get("Accept-Encoding", "")
        )
        self._send(engine.handle(request, dict(self.headers.items())))

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle


class ShimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], engine: ChdbHTTPEngine, *, verbose: bool = False
    ) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.verbose = verbose

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def _exit_with_parent(server: ShimHTTPServer) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", required=True, help="chdb data directory (owned by this shim)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--exit-with-parent", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    options = parser.parse_args(argv)

    engine = ChdbHTTPEngine(options.data, user=options.user, password=options.password)
    server = ShimHTTPServer((options.host, options.port), engine, verbose=options.verbose)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if options.exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(server,), daemon=True).start()
    print(f"{LISTENING_PREFIX}{server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
    return 0


class ShimProcess:
    """The shim in a subprocess that owns ``data_dir``; stop() always ends it."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        log_path: str | Path | None = None,
        start_timeout: float = 60,
        user: str = "default",
        password: str = "",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path) if log_path else self.data_dir.with_suffix(".log")
        self.start_timeout = start_timeout
        self.user = user
        self.password = password
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ShimProcess:
        repo_root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "tests.support.clickhouse_http",
            "--data",
            str(self.data_dir),
            "--port",
            "0",
            "--user",
            self.user,
            "--password",
            self.password,
            "--exit-with-parent",
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=log
            )
        try:
            self.url = self._read_url()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"ClickHouse HTTP shim did not start within {self.start_timeout}s; "
                    f"log: {self._log_tail()}"
                )
            ready, _, _ = select.select([self._process.stdout], [], [], remaining)
            if ready:
                byte = os.read(self._process.stdout.fileno(), 1)
                if not byte:
                    self._process.wait(timeout=10)
                    raise RuntimeError(
                        f"ClickHouse HTTP shim exited with {self._process.returncode}; "
                        f"log: {self._log_tail()}"
                    )
                line += byte
        text = line.decode().strip()
        if not text.startswith(LISTENING_PREFIX):
            raise RuntimeError(f"unexpected first line from the shim: {text!r}")
        return text.removeprefix(LISTENING_PREFIX)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ShimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
