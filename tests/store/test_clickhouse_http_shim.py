"""The HTTP shim answers like a ClickHouse server where the contract suite relies on it."""

from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlencode

import clickhouse_connect
import lz4.frame
import pytest

from meterhouse.errors import StoreError, StoreUnavailableError
from meterhouse.store.server_backend import ServerStore

pytestmark = pytest.mark.timeout(120)


def post(
    url: str, body: bytes, args: dict[str, str] | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{url}/?{urlencode(args or {})}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def test_ping(clickhouse_http_url: str) -> None:
    with urllib.request.urlopen(f"{clickhouse_http_url}/ping", timeout=30) as response:
        assert response.read() == b"Ok.\n"


def test_query_answers_tab_separated_by_default(clickhouse_http_url: str) -> None:
    status, headers, body = post(clickhouse_http_url, b"SELECT 1 AS x, 'a\\tb' AS y")
    assert (status, body) == (200, b"1\ta\\tb\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert "X-ClickHouse-Summary" in headers


def test_errors_look_like_a_server_error(clickhouse_http_url: str) -> None:
    status, headers, body = post(clickhouse_http_url, b"SELECT * FROM no_such_table")
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception: ")
    assert b"(UNKNOWN_TABLE) (version " in body

    status, headers, body = post(clickhouse_http_url, b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("lz4", lz4.frame.compress)]
)
def test_compressed_insert_bodies(
    clickhouse_http_url: str, encoding: str, compress: object
) -> None:
    table = f"shim_{uuid.uuid4().hex[:8]}"
    assert (
        post(
            clickhouse_http_url,
            f"CREATE TABLE {table} (a UInt8, b String) ENGINE = Memory".encode(),
        )[0]
        == 200
    )
    status, _, body = post(
        clickhouse_http_url,
        compress(b"1\tone\n2\ttwo\n"),  # type: ignore[operator]
        {"query": f"INSERT INTO {table} FORMAT TabSeparated"},
        **{"Content-Encoding": encoding},
    )
    assert (status, body) == (200, b"")
    assert post(clickhouse_http_url, f"SELECT * FROM {table} ORDER BY a".encode())[2] == (
        b"1\tone\n2\ttwo\n"
    )


def test_responses_are_compressed_when_asked(clickhouse_http_url: str) -> None:
    status, headers, body = post(
        clickhouse_http_url,
        b"SELECT number FROM numbers(3)",
        {"enable_http_compression": "1"},
        **{"Accept-Encoding": "gzip"},
    )
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == b"0\n1\n2\n"


def test_settings_hold_for_one_request_only(clickhouse_http_url: str) -> None:
    query = b"SELECT getSetting('max_block_size')"
    assert post(clickhouse_http_url, query, {"max_block_size": "777"})[2] == b"777\n"
    assert post(clickhouse_http_url, query)[2] != b"777\n"
    status, headers, _ = post(
        clickhouse_http_url, b"CREATE TABLE ro (a UInt8) ENGINE = Memory", {"readonly": "1"}
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")


def test_default_clickhouse_connect_client(clickhouse_http_url: str) -> None:
    """Sessions, compression and form-encoded parameters, as a default client uses them."""
    port = int(clickhouse_http_url.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=port, form_encode_query_params=True
    )
    try:
        client.command("CREATE TEMPORARY TABLE scratch (a UInt32)")
        client.insert("scratch", [[1], [2], [3]], column_names=["a"])
        result = client.query("SELECT sum(a) AS s, {p:String} AS p FROM scratch", {"p": "x'y"})
        assert result.result_rows == [(6, "x'y")]
    finally:
        client.close()


def test_wrong_password_is_a_store_error(clickhouse_http_url: str) -> None:
    url = clickhouse_http_url.replace("http://", "http://default:wrong@") + "/db"
    with pytest.raises(StoreError) as caught:
        ServerStore(url, "db")
    assert caught.value.code == 516


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailableError):
        ServerStore(f"http://127.0.0.1:{port}/db", "db", connect_timeout=2)
