"""The store contract: the same cases against the embedded backend and the server backend.

``store`` runs each test once per backend: ``chdb`` is ChdbStore in this process, ``server``
is ServerStore over clickhouse-connect against the HTTP shim, which runs the same engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from meterhouse.errors import StoreError
from meterhouse.store import QueryResult, Store
from meterhouse.store.arrow_types import arrow_schema_for
from tests.conftest import StoreFactory

pytestmark = pytest.mark.timeout(120)

TINY = Decimal("0.000000000001")
HUGE = Decimal("12345678901234567890.123456789012")
PLUS_TWO = timezone(timedelta(hours=2))

TYPES_DDL = """
CREATE TABLE {table} (
    id UInt32,
    amount Decimal(38, 12),
    at DateTime64(3, 'UTC'),
    day Date,
    account LowCardinality(String),
    rates Array(Decimal(38, 12)),
    counts Map(String, UInt32),
    note Nullable(String),
    credit Nullable(Decimal(38, 12))
) ENGINE = MergeTree ORDER BY id
"""
TYPES_COLUMNS: dict[str, list[Any]] = {
    "id": [1, 2, 3],
    "amount": [TINY, HUGE, Decimal("-0.5")],
    "at": [
        datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC),
        datetime(2024, 3, 1, 1, 0, 0, 1000, tzinfo=PLUS_TWO),
        datetime(1999, 12, 31, 0, 0, tzinfo=UTC),
    ],
    "day": [date(2024, 2, 29), date(1970, 1, 1), date(2149, 6, 6)],
    "account": ["acme", "acme", "o'brien \\ co"],
    "rates": [[TINY, HUGE], [], [Decimal("1.5")]],
    "counts": [{"a": 1, "b": 4294967295}, {}, {"x": 0}],
    "note": [None, "", "ünïcödé 'quoted'"],
    "credit": [None, TINY, HUGE],
}
TYPES_NAMES = (
    "id",
    "amount",
    "at",
    "day",
    "account",
    "rates",
    "counts",
    "note",
    "credit",
)
TYPES_TYPES = (
    "UInt32",
    "Decimal(38, 12)",
    "DateTime64(3, 'UTC')",
    "Date",
    "LowCardinality(String)",
    "Array(Decimal(38, 12))",
    "Map(String, UInt32)",
    "Nullable(String)",
    "Nullable(Decimal(38, 12))",
)


def create_types_table(store: Store, table: str = "typed") -> str:
    store.command(TYPES_DDL.format(table=table))
    return table


def create_simple_table(store: Store, table: str = "simple") -> str:
    store.command(f"CREATE TABLE {table} (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    return table


def count_rows(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}").scalar())


# -- DDL and commands ---------------------------------------------------------------------


def test_command_runs_ddl(store: Store) -> None:
    assert store.command("CREATE TABLE ddl_made (x UInt8) ENGINE = Memory") is None
    assert store.query("EXISTS TABLE ddl_made").scalar() == 1
    store.command("DROP TABLE ddl_made")
    assert store.query("EXISTS TABLE ddl_made").scalar() == 0


def test_store_uses_its_database(store: Store) -> None:
    assert store.query("SELECT currentDatabase()").scalar() == store.database
    create_simple_table(store)
    tables = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
    )
    assert tables.column("name") == ["simple"]


def test_command_binds_parameters(store: Store) -> None:
    table = create_simple_table(store)
    store.command(
        f"INSERT INTO {table} SELECT {{id:UInt32}}, {{name:String}}", {"id": 7, "name": "it's"}
    )
    assert store.query(f"SELECT id, name FROM {table}").rows == [(7, "it's")]


# -- inserts and exact read-back ------------------------------------------------------------


def test_insert_reads_back_exact_values(store: Store) -> None:
    table = create_types_table(store)
    assert store.insert(table, TYPES_COLUMNS) == 3

    result = store.query(f"SELECT * FROM {table} ORDER BY id")

    assert result.column_names == TYPES_NAMES
    assert result.column_types == TYPES_TYPES
    assert result.rows == [
        (
            1,
            TINY,
            datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC),
            date(2024, 2, 29),
            "acme",
            [TINY, HUGE],
            {"a": 1, "b": 4294967295},
            None,
            None,
        ),
        (
            2,
            HUGE,
            datetime(2024, 2, 29, 23, 0, 0, 1000, tzinfo=UTC),  # +02:00 stored as UTC
            date(1970, 1, 1),
            "acme",
            [],
            {},
            "",
            TINY,
        ),
        (
            3,
            Decimal("-0.5"),
            datetime(1999, 12, 31, 0, 0, tzinfo=UTC),
            date(2149, 6, 6),
            "o'brien \\ co",
            [Decimal("1.5")],
            {"x": 0},
            "ünïcödé 'quoted'",
            HUGE,
        ),
    ]


def test_decimals_keep_every_digit(store: Store) -> None:
    table = create_types_table(store)
    store.insert(table, {name: values[:2] for name, values in TYPES_COLUMNS.items()})

    amounts = store.query(f"SELECT amount FROM {table} ORDER BY id").column("amount")

    assert [format(value, "f") for value in amounts] == [
        "0.000000000001",
        "12345678901234567890.123456789012",
    ]
    assert all(isinstance(value, Decimal) for value in amounts)
    total = store.query(f"SELECT toString(sum(amount)) FROM {table}").scalar()
    assert total == "12345678901234567890.123456789013"


def test_datetimes_come_back_aware_in_utc(store: Store) -> None:
    table = create_types_table(store)
    store.insert(table, TYPES_COLUMNS)

    stamps = store.query(f"SELECT at FROM {table} ORDER BY id").column("at")

    assert all(stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0) for stamp in stamps)
    assert stamps[0].microsecond == 123000
    ms = store.query(f"SELECT toUnixTimestamp64Milli(at) FROM {table} ORDER BY id").rows
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [row[0] for row in ms] == [
        (value - epoch) // timedelta(milliseconds=1) for value in TYPES_COLUMNS["at"]
    ]


def test_simple_aggregate_columns_read_as_their_values(store: Store) -> None:
    """A rollup's SimpleAggregateFunction columns read as the values they aggregate (reprice
    compares them with a fresh aggregation, key by key)."""
    store.command(
        "CREATE TABLE rollup_t (k String, "
        "first SimpleAggregateFunction(min, DateTime64(3, 'UTC')), "
        "total SimpleAggregateFunction(sum, Decimal(38, 12))) "
        "ENGINE = AggregatingMergeTree ORDER BY k"
    )
    store.command(
        "INSERT INTO rollup_t VALUES ('a', '2026-10-31 23:55:49.180', 1.5), "
        "('a', '2026-11-01 00:00:00', 2.25)"
    )
    row = store.query("SELECT k, min(first), sum(total), any(first) FROM rollup_t GROUP BY k")
    ((key, first, total, some),) = row.rows
    assert (key, first, total) == (
        "a",
        datetime(2026, 10, 31, 23, 55, 49, 180000, tzinfo=UTC),
        Decimal("3.75"),
    )
    assert isinstance(some, datetime) and some.tzinfo is not None


def test_insert_of_some_columns_fills_defaults(store: Store) -> None:
    table = create_types_table(store)
    assert store.insert(table, {"id": [5], "amount": [TINY]}) == 1
    row = next(store.query(f"SELECT * FROM {table}").dicts())
    assert row["amount"] == TINY
    assert row["account"] == ""
    assert row["rates"] == []
    assert row["counts"] == {}
    assert row["note"] is None


def test_empty_insert_returns_zero(store: Store) -> None:
    table = create_simple_table(store)
    assert store.insert(table, {"id": [], "name": []}) == 0
    assert count_rows(store, table) == 0


def test_column_length_mismatch_raises_value_error(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(ValueError, match="differ in length"):
        store.insert(table, {"id": [1, 2], "name": ["one"]})
    assert count_rows(store, table) == 0


def test_insert_without_columns_raises_value_error(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(ValueError):
        store.insert(table, {})


def test_insert_of_unknown_column_raises_store_error(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(StoreError) as caught:
        store.insert(table, {"id": [1], "nope": ["x"]})
    assert caught.value.code == 16
    assert caught.value.name == "NO_SUCH_COLUMN_IN_TABLE"
    assert "nope" in str(caught.value)
    assert count_rows(store, table) == 0


def test_insert_into_unknown_table_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.insert("no_such_table", {"id": [1]})
    assert caught.value.code == 60


def test_insert_of_values_that_do_not_fit_raises_store_error(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(StoreError):
        store.insert(table, {"id": ["not a number"], "name": ["x"]})
    assert count_rows(store, table) == 0


def test_insert_rejects_unsafe_table_names(store: Store) -> None:
    with pytest.raises(ValueError, match="identifier"):
        store.insert("t; DROP TABLE x", {"id": [1]})


# -- parameter binding ------------------------------------------------------------------------

AWKWARD = "it's a \\ backslash, a \\' pair, \"double\", tab\there, new\nline, {braces}"


def test_binds_string_with_quotes_and_backslashes(store: Store) -> None:
    result = store.query("SELECT {s:String} AS s, length({s:String}) AS n", {"s": AWKWARD})
    assert result.rows == [(AWKWARD, len(AWKWARD.encode()))]


def test_binds_integers(store: Store) -> None:
    result = store.query(
        "SELECT {a:Int64} AS a, {b:UInt64} AS b, {c:Int32} AS c",
        {"a": -9223372036854775808, "b": 18446744073709551615, "c": 0},
    )
    assert result.rows == [(-9223372036854775808, 18446744073709551615, 0)]
    assert result.column_types == ("Int64", "UInt64", "Int32")


def test_binds_decimals(store: Store) -> None:
    result = store.query(
        "SELECT {a:Decimal(38, 12)} AS a, {b:Decimal(38, 12)} AS b, "
        "{a:Decimal(38, 12)} < {b:Decimal(38, 12)} AS lt",
        {"a": TINY, "b": HUGE},
    )
    assert result.rows == [(TINY, HUGE, 1)]


def test_binds_naive_datetime_as_utc(store: Store) -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5, 678000)
    result = store.query("SELECT {t:DateTime64(3, 'UTC')} AS t", {"t": naive})
    assert result.scalar() == naive.replace(tzinfo=UTC)


def test_binds_aware_datetime_converted_to_utc(store: Store) -> None:
    aware = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=PLUS_TWO)
    result = store.query(
        "SELECT {t:DateTime64(3, 'UTC')} AS t, toString({t:DateTime64(3, 'UTC')}) AS text",
        {"t": aware},
    )
    assert result.rows == [
        (datetime(2024, 1, 2, 1, 4, 5, 678000, tzinfo=UTC), "2024-01-02 01:04:05.678")
    ]


def test_binds_string_arrays(store: Store) -> None:
    values = ["plain", "quo'te", "back\\slash", "", "comma, and ]bracket["]
    result = store.query(
        "SELECT {v:Array(String)} AS v, length({v:Array(String)}) AS n", {"v": values}
    )
    assert result.rows == [(values, len(values))]


def test_parameters_filter_a_table(store: Store) -> None:
    table = create_types_table(store)
    store.insert(table, TYPES_COLUMNS)
    result = store.query(
        f"SELECT id FROM {table} WHERE account = {{account:String}} "
        "AND at >= {since:DateTime64(3, 'UTC')} ORDER BY id",
        {"account": "acme", "since": datetime(2024, 2, 29, 23, 0, 0, 1000)},
    )
    assert result.column("id") == [1, 2]
    odd = store.query(
        f"SELECT id FROM {table} WHERE account IN {{accounts:Array(String)}}",
        {"accounts": ["o'brien \\ co"]},
    )
    assert odd.column("id") == [3]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "code", "name"),
    [
        ("SELEC 1", 62, "SYNTAX_ERROR"),
        ("SELECT * FROM no_such_table", 60, "UNKNOWN_TABLE"),
        ("SELECT no_such_column FROM system.one", 47, "UNKNOWN_IDENTIFIER"),
        ("SELECT no_such_function(1)", 46, "UNKNOWN_FUNCTION"),
        ("SELECT * FROM no_such_database.t", 81, "UNKNOWN_DATABASE"),
    ],
)
def test_query_errors_carry_clickhouse_codes(store: Store, sql: str, code: int, name: str) -> None:
    with pytest.raises(StoreError) as caught:
        store.query(sql)
    assert (caught.value.code, caught.value.name) == (code, name)
    assert str(caught.value).startswith(f"ClickHouse error {code} ({name}): ")
    assert sql in caught.value.sql


def test_command_errors_carry_clickhouse_codes(store: Store) -> None:
    create_simple_table(store)
    with pytest.raises(StoreError) as caught:
        store.command("CREATE TABLE simple (x UInt8) ENGINE = Memory")
    assert (caught.value.code, caught.value.name) == (57, "TABLE_ALREADY_EXISTS")
    with pytest.raises(StoreError) as caught:
        store.command("ALTER TABLE simple DROP COLUMN no_such_column")
    assert caught.value.code in (10, 16)  # NOT_FOUND_COLUMN_IN_BLOCK / NO_SUCH_COLUMN_IN_TABLE


def test_missing_parameter_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.query("SELECT {missing:String}")
    assert caught.value.code == 456  # UNKNOWN_QUERY_PARAMETER


# -- settings --------------------------------------------------------------------------------


def test_settings_apply_to_the_query(store: Store) -> None:
    result = store.query(
        "SELECT getSetting('max_block_size') AS s, getSetting('max_threads') AS t",
        settings={"max_block_size": 1234, "max_threads": 3},
    )
    assert [int(value) for value in result.rows[0]] == [1234, 3]
    # and only to that query
    after = store.query("SELECT getSetting('max_block_size')").scalar()
    assert int(after) != 1234


def test_readonly_setting_rejects_insert(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(StoreError) as caught:
        store.insert(table, {"id": [1], "name": ["x"]}, settings={"readonly": 1})
    assert (caught.value.code, caught.value.name) == (164, "READONLY")
    with pytest.raises(StoreError) as caught:
        store.command(f"INSERT INTO {table} SELECT 2, 'y'", settings={"readonly": 1})
    assert caught.value.code == 164
    assert count_rows(store, table) == 0
    # reads are still allowed, and the setting did not stick
    assert store.query(f"SELECT count() FROM {table}", settings={"readonly": 1}).scalar() == 0
    store.insert(table, {"id": [3], "name": ["z"]})
    assert count_rows(store, table) == 1


def test_settings_apply_to_insert_values_command(store: Store) -> None:
    table = create_simple_table(store)
    with pytest.raises(StoreError) as caught:
        store.command(f"INSERT INTO {table} VALUES (2, 'y')", settings={"readonly": 1})
    assert caught.value.code == 164
    store.command(f"INSERT INTO {table} VALUES (3, 'z')", settings={"max_threads": 1})
    assert store.query(f"SELECT id, name FROM {table}").rows == [(3, "z")]


def test_unknown_setting_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.query("SELECT 1", settings={"no_such_setting_anywhere": 1})
    assert caught.value.code == 115


# -- Arrow in and out -------------------------------------------------------------------------


def types_arrow() -> pa.Table:
    """TYPES_COLUMNS as Arrow, typed as the table's columns."""
    schema = arrow_schema_for(list(zip(TYPES_NAMES, TYPES_TYPES, strict=True)))
    return pa.table(
        {name: pa.array(TYPES_COLUMNS[name], schema.field(name).type) for name in TYPES_NAMES}
    )


def test_insert_arrow_reads_back_exact_values(store: Store) -> None:
    create_types_table(store)
    assert store.insert_arrow("typed", types_arrow()) == 3
    # The same values as inserted column-wise: every digit, every instant.
    other = create_types_table(store, "typed_values")
    store.insert(other, TYPES_COLUMNS)
    by_arrow = store.query("SELECT * FROM typed ORDER BY id")
    by_values = store.query(f"SELECT * FROM {other} ORDER BY id")
    assert by_arrow.rows == by_values.rows
    assert by_arrow.column(name="amount") == TYPES_COLUMNS["amount"]


def test_query_arrow_gives_typed_columns(store: Store) -> None:
    create_types_table(store)
    store.insert("typed", TYPES_COLUMNS)
    table = store.query_arrow(
        "SELECT id, amount, at, account, note FROM typed WHERE id >= {low:UInt32} ORDER BY id",
        {"low": 1},
    )
    assert table.column_names == ["id", "amount", "at", "account", "note"]
    assert table.schema.field("amount").type == pa.decimal128(38, 12)
    assert table.schema.field("account").type == pa.string()  # LowCardinality, as a string
    assert table.column("amount").to_pylist() == TYPES_COLUMNS["amount"]
    assert table.column("account").to_pylist() == TYPES_COLUMNS["account"]
    assert table.column("note").to_pylist() == TYPES_COLUMNS["note"]
    assert [t.astimezone(UTC) for t in table.column("at").to_pylist()] == [
        t.astimezone(UTC) for t in TYPES_COLUMNS["at"]
    ]


def test_query_arrow_of_no_rows_is_an_empty_table(store: Store) -> None:
    create_simple_table(store)
    table = store.query_arrow("SELECT id, name FROM simple WHERE id > 5")
    assert table.num_rows == 0


def test_insert_arrow_of_no_rows_returns_zero(store: Store) -> None:
    create_simple_table(store)
    empty = pa.table({"id": pa.array([], pa.uint32()), "name": pa.array([], pa.string())})
    assert store.insert_arrow("simple", empty) == 0


def test_insert_arrow_errors_carry_clickhouse_codes(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.insert_arrow("no_such_table", pa.table({"id": [1]}))
    assert caught.value.code == 60


def test_insert_arrow_rejects_unsafe_table_names(store: Store) -> None:
    with pytest.raises(ValueError):
        store.insert_arrow("simple; DROP TABLE x", pa.table({"id": [1]}))


def test_same_token_is_stored_once_in_table_and_view(store: Store) -> None:
    """A block inserted again under its token is dropped, and a view's missing block is
    written by the second insert (what a replay after kill -9 relies on)."""
    store.command(
        "CREATE TABLE src (k String, v Int64) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    store.command(
        "CREATE TABLE dst (k String, v Int64) ENGINE = SummingMergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    rows = pa.table({"k": ["a", "b"], "v": pa.array([1, 2], pa.int64())})
    settings = {
        "insert_deduplication_token": "batch-1",
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }
    store.insert_arrow("src", rows, settings=settings)  # as if killed before the view's part
    store.command("CREATE MATERIALIZED VIEW src_mv TO dst AS SELECT k, v FROM src")
    for _ in range(2):
        store.insert_arrow("src", rows, settings=settings)
    assert count_rows(store, "src") == 2
    assert store.query("SELECT sum(v) FROM dst").scalar() == 3
    store.insert_arrow("src", rows, settings={**settings, "insert_deduplication_token": "b2"})
    assert count_rows(store, "src") == 4


def test_capabilities_say_where_the_engine_runs(store: Store) -> None:
    caps = store.capabilities
    assert caps.writes
    if caps.data_dir is not None:  # embedded: the directory exists and holds the engine
        assert (caps.data_dir / "status").exists() or any(caps.data_dir.iterdir())
        assert not caps.access_management
    else:
        assert caps.access_management


# -- both backends agree ---------------------------------------------------------------------

SAME_QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    ("SELECT * FROM typed ORDER BY id", None),
    (
        "SELECT account, count() AS n, sum(amount) AS total, max(at) AS last "
        "FROM typed GROUP BY account ORDER BY account",
        None,
    ),
    ("SELECT id, rates, counts['a'] AS a FROM typed WHERE note IS NOT NULL ORDER BY id", None),
    (
        "SELECT {s:String} AS s, {d:Decimal(38, 12)} AS d, {t:DateTime64(3, 'UTC')} AS t, "
        "{v:Array(String)} AS v, {i:Int64} AS i",
        {
            "s": AWKWARD,
            "d": HUGE,
            "t": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=PLUS_TWO),
            "v": ["a", "b'c"],
            "i": -1,
        },
    ),
    ("SELECT id FROM typed WHERE id > 100", None),
    (
        "SELECT toDate('2024-02-29') AS d, toDateTime64('2024-01-01 00:00:00.5', 3, 'UTC') AS t",
        None,
    ),
]


@pytest.mark.parametrize(("sql", "params"), SAME_QUERIES)
def test_backends_return_identical_results(
    make_store: StoreFactory, sql: str, params: dict[str, Any] | None
) -> None:
    results: dict[str, QueryResult] = {}
    for backend in ("chdb", "server"):
        store = make_store(backend)
        create_types_table(store)
        store.insert("typed", TYPES_COLUMNS)
        results[backend] = store.query(sql, params)
    assert results["chdb"] == results["server"]
    assert results["chdb"].column_names or "WHERE id > 100" in sql


# -- the embedded directory is owned by one process ----------------------------------------

SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys
    from meterhouse.errors import StoreError
    from meterhouse.store.chdb_backend import ChdbStore
    try:
        ChdbStore(sys.argv[1], "second")
    except StoreError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": str(exc), "code": exc.code}))
    else:
        print(json.dumps({"type": None}))
    """
)


def open_in_second_process(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_second_process_gets_store_locked_error(make_store: StoreFactory) -> None:
    held = make_store("chdb")
    outcome = open_in_second_process(held.url)
    assert outcome["type"] == "StoreLockedError", outcome
    assert outcome["code"] == 76
    assert f"{held.path} is in use by" in outcome["message"]
    assert "one process owns it at a time" in outcome["message"]
    # the holder is unharmed
    assert held.query("SELECT 1").scalar() == 1


def test_release_memory_is_safe_at_any_time(store: Store) -> None:
    create_simple_table(store)
    store.insert("simple", {"id": [1], "name": ["a"]})
    store.release_memory()
    assert count_rows(store, "simple") == 1
