"""The one place that knows the database driver: a small DB-API adapter over SQLite or PostgreSQL.

Store modules write their SQL once, in qmark style (``?``), portable between both engines
(``ON CONFLICT ... DO UPDATE / DO NOTHING``, ``RETURNING``, multi-row ``VALUES``), and run it
through a :class:`Db`.  Rows come back as tuples; :func:`dicts` and :func:`one_dict` name them
by the cursor's columns.  Where the dialects must differ a module branches on ``db.dialect``
in one small, named place.

Transactions are explicit: ``with db.transaction(): ...`` is ``BEGIN IMMEDIATE ... COMMIT`` on
SQLite (the write lock is taken at the start, so a busy store fails before any work is done)
and ``BEGIN ... COMMIT`` on PostgreSQL; any exception rolls back and propagates.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRES = "postgres"
BUSY_TIMEOUT_MS = 5000


class Cursor(Protocol):
    """What store modules use of a DB-API cursor (``sqlite3.Cursor`` and psycopg's both have it)."""

    description: Any
    rowcount: int

    def fetchone(self) -> Sequence[Any] | None: ...
    def fetchall(self) -> list[Sequence[Any]]: ...
    def __iter__(self) -> Iterator[Sequence[Any]]: ...


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Where the store lives: a SQLite file (the default, in the data dir) or a PostgreSQL URL."""

    path: Path | None = None
    url: str | None = None

    @classmethod
    def sqlite(cls, path: str | Path) -> StoreTarget:
        return cls(path=Path(path))

    @classmethod
    def postgres(cls, url: str) -> StoreTarget:
        return cls(url=url)

    @property
    def dialect(self) -> str:
        return POSTGRES if self.url else SQLITE

    def describe(self) -> str:
        """For messages: the file, or the URL without its password."""
        if self.url:
            return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", self.url)
        return str(self.path)


class Db:
    """One connection.  Not shared between threads: the writer thread has its own, every reader
    thread its own (``check_same_thread`` is off only so that close() may run elsewhere)."""

    dialect: str = SQLITE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        self._begin()
        try:
            yield
            self.execute("COMMIT")  # a COMMIT that fails (busy, disk full) leaves the transaction open
        except BaseException:
            self.rollback()
            raise

    @contextlib.contextmanager
    def savepoint(self, name: str = "item") -> Iterator[None]:
        """Inside a transaction: undo only this block's writes when it raises."""
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO {name}")
            self.execute(f"RELEASE {name}")
            raise
        self.execute(f"RELEASE {name}")

    def rollback(self) -> None:
        """Roll back the open transaction, if any (never raises: a failed connection rolls back itself)."""
        try:
            if self.in_transaction:
                self.execute("ROLLBACK")
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        self.execute("BEGIN")


class SqliteDb(Db):
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.raw = conn  # the sqlite3 connection (migrations hand it to sqlite-utils)
        self.path = path

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def _begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.raw.close()


def open_sqlite(path: str | Path, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> SqliteDb:
    """A connection with the pragmas every connection of the store needs (autocommit mode: every
    transaction is explicit).  The schema is not touched here (``store.migrations``)."""
    path = str(path)
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return SqliteDb(conn, path)


def open_postgres(url: str, *, readonly: bool = False) -> Db:
    """A PostgreSQL connection (psycopg 3); ``?`` placeholders are rewritten for the driver."""
    from connector.store.postgres import open_postgres as open_pg  # psycopg only loads in server mode

    return open_pg(url, readonly=readonly)


def open_db(target: StoreTarget, *, readonly: bool = False) -> Db:
    if target.url:
        return open_postgres(target.url, readonly=readonly)
    assert target.path is not None
    return open_sqlite(target.path, readonly=readonly)


# -- rows ------------------------------------------------------------------------------


def columns(cursor: Cursor) -> list[str]:
    return [d[0] for d in cursor.description]


def dicts(cursor: Cursor) -> list[dict[str, Any]]:
    """Every row of ``cursor`` as a dict keyed by column name."""
    names = columns(cursor)
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def one_dict(cursor: Cursor) -> dict[str, Any] | None:
    """The next row of ``cursor`` as a dict, or None."""
    row = cursor.fetchone()
    return None if row is None else dict(zip(columns(cursor), row))


def marks(n: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``n`` values."""
    return ", ".join("?" * n)


def values_rows(n_rows: int, n_columns: int) -> str:
    """``(?, ?), (?, ?)`` for a multi-row ``VALUES`` of ``n_rows`` rows."""
    row = "(" + ", ".join("?" * n_columns) + ")"
    return ", ".join([row] * n_rows)


_PG_ARRAYS = {str: "text[]", int: "bigint[]", float: "double precision[]", bytes: "bytea[]"}


def many_rows(db: Db, kinds: Sequence[type], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """Rows to insert or to join against, as SQL and its parameters, for columns of these Python types.

    SQLite: ``VALUES (?, ?), (?, ?), ...``.  PostgreSQL: ``SELECT * FROM unnest(?::text[], ?::bigint[])``,
    one array per column: the statement's text is the same whatever the number of rows, so it is
    parsed once by the driver and planned once by the server (prepared), where ``VALUES`` would be
    a new statement for every batch size."""
    if db.dialect != POSTGRES:
        return "VALUES " + values_rows(len(rows), len(kinds)), [v for r in rows for v in r]
    columns: list[list[Any]] = [[] for _ in kinds]
    for r in rows:
        for column, value in zip(columns, r):
            column.append(value)
    for kind, column in zip(kinds, columns):
        if kind is float:  # one element type per array: whole numbers in a FLOAT column as floats
            column[:] = [float(v) if type(v) is int else v for v in column]
        elif kind is int:  # and flags as the integers SQLite stores
            column[:] = [int(v) if type(v) is bool else v for v in column]
    return "SELECT * FROM unnest(" + ", ".join(f"?::{_PG_ARRAYS[k]}" for k in kinds) + ")", columns
