"""The PostgreSQL adapter: qmark SQL rewritten for psycopg, rows shaped like SQLite's, reconnects."""

from __future__ import annotations

import psycopg
import pytest

from connector.store import db as dbmod
from connector.store.postgres import pg_sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?", "SELECT %s"),
        ("INSERT INTO t (a, b) VALUES (?, ?)", "INSERT INTO t (a, b) VALUES (%s, %s)"),
        ("SELECT '?' || ?", "SELECT '?' || %s"),  # a quoted ? is text
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ('SELECT "odd?name" FROM t WHERE k = ?', 'SELECT "odd?name" FROM t WHERE k = %s'),
        ("SELECT 1 -- why?\n, ?", "SELECT 1 -- why?\n, %s"),
        ("SELECT /* ? */ ?", "SELECT /* ? */ %s"),
        ("SELECT ?::bigint", "SELECT %b::bigint"),
        ("SELECT n % 2 FROM t WHERE name LIKE 'a%' AND k = ?", "SELECT n %% 2 FROM t WHERE name LIKE 'a%%' AND k = %s"),
    ],
)
def test_qmark_sql_is_rewritten_for_the_driver(sql, expected):
    assert pg_sql(sql) == expected


@pytest.fixture
def pg(pg_url):
    conn = dbmod.open_postgres(pg_url)
    yield conn
    conn.close()


def test_rows_come_back_like_sqlite_rows(pg):
    pg.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, x DOUBLE PRECISION, b BYTEA, flag BIGINT)")
    with pg.transaction():
        pg.executemany("INSERT INTO t (k, n, x, b, flag) VALUES (?, ?, ?, ?, ?)",
                       [("a", 2, 0.5, b"\x00\xff", True), ("b", 3, 1.25, b"", False)])
    # SUM of integers is numeric in PostgreSQL: loaded as int, as SQLite gives it; averages stay floats
    row = pg.execute("SELECT SUM(n), SUM(x), AVG(n), COUNT(*) FROM t").fetchone()
    assert row == (5, 1.75, 2.5, 2) and [type(v) for v in row] == [int, float, float, int]
    assert pg.execute("SELECT b, flag FROM t ORDER BY k").fetchall() == [(b"\x00\xff", 1), (b"", 0)]
    assert dbmod.dicts(pg.execute("SELECT k FROM t WHERE k LIKE 'a%' AND n > ?", (1,))) == [{"k": "a"}]


def test_a_read_only_connection_refuses_writes(pg, pg_url):
    pg.execute("CREATE TABLE t (k TEXT)")
    ro = dbmod.open_postgres(pg_url, readonly=True)
    try:
        assert ro.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            with ro.transaction():
                ro.execute("INSERT INTO t (k) VALUES (?)", ("x",))
        assert not ro.in_transaction
    finally:
        ro.close()


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_lost_between_transactions_is_opened_again(pg, pg_url):
    pg.execute("CREATE TABLE t (k TEXT)")
    first = pg.raw.info.backend_pid
    _terminate(pg_url, first)
    with pg.transaction():  # BEGIN finds it gone: nothing was lost, so it begins on a new connection
        pg.execute("INSERT INTO t (k) VALUES (?)", ("after",))
    assert pg.raw.info.backend_pid != first
    assert pg.execute("SELECT k FROM t").fetchall() == [("after",)]


def test_a_connection_lost_inside_a_transaction_fails_that_transaction(pg, pg_url):
    pg.execute("CREATE TABLE t (k TEXT)")
    with pytest.raises(psycopg.OperationalError):
        with pg.transaction():
            pg.execute("INSERT INTO t (k) VALUES (?)", ("lost",))
            _terminate(pg_url, pg.raw.info.backend_pid)
            pg.execute("INSERT INTO t (k) VALUES (?)", ("never",))
    with pg.transaction():
        pg.execute("INSERT INTO t (k) VALUES (?)", ("next",))
    assert pg.execute("SELECT k FROM t").fetchall() == [("next",)]


def test_arrays_of_many_rows_go_in_binary_and_come_back_as_given(pg):
    from connector.store.db import many_rows

    assert pg_sql("SELECT * FROM unnest(?::text[], ?::bigint[])") == "SELECT * FROM unnest(%b::text[], %b::bigint[])"
    pg.execute("CREATE TABLE t (k TEXT, n BIGINT, x DOUBLE PRECISION, b BYTEA)")
    rows = [('{"a": "q\\"uote", "t": "\u00e9"}', 1, 2, b"\x00\xff"), (None, True, None, None), ("z", None, 0.5, b"")]
    source, params = many_rows(pg, (str, int, float, bytes), rows)
    pg.execute(f"INSERT INTO t (k, n, x, b) {source}", params)
    assert pg.execute("SELECT k, n, x, b FROM t ORDER BY x NULLS FIRST").fetchall() == [
        (None, 1, None, None), ("z", None, 0.5, b""), (rows[0][0], 1, 2.0, b"\x00\xff")]
