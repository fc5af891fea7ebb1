"""The PostgreSQL half of :mod:`connector.store.db`: one psycopg 3 connection behind the ``Db`` interface.

Store SQL is written once in qmark style; :func:`pg_sql` rewrites ``?`` to psycopg's ``%s`` (and a
literal ``%`` to ``%%``), skipping quoted strings, quoted names and comments.  The connection runs
in autocommit mode, so every transaction is the explicit ``BEGIN ... COMMIT`` of
:meth:`Db.transaction`.  Rows come back as tuples shaped like SQLite's: ``numeric`` results (what
``SUM`` of an integer column gives) load as ``int`` when whole and ``float`` otherwise, and a Python
``bool`` is sent as the integer SQLite would store.

A connection that broke between transactions (server restart, network cut) is opened again for
the next transaction; one that breaks inside a transaction fails that transaction, and the next
one starts on a new connection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

from connector.store.db import POSTGRES, Db

CONNECT_TIMEOUT_SECONDS = 10
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.S)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """qmark SQL for psycopg: ``?`` -> ``%s``, ``%`` -> ``%%``; quoted text and comments keep their ``?``."""

    def rewrite(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _TOKENS.sub(rewrite, sql)


class _NumericLoader(Loader):
    """``numeric`` as SQLite would give it: ``int`` when whole (``SUM`` of integers), else ``float``."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode("ascii")
        if text.lstrip("-").isdigit():
            return int(text)
        return float(text)


class _BoolAsInteger(Dumper):
    """SQLite has no booleans: ``True``/``False`` are stored as 1/0 there, so here too."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


def connect(url: str, *, readonly: bool = False) -> psycopg.Connection[Any]:
    """A raw psycopg connection set up like every connection of the store."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                           application_name="callsync")
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    if readonly:
        conn.execute("SET default_transaction_read_only = on")
    return conn


class PgDb(Db):
    dialect = POSTGRES

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self.raw = connect(url, readonly=readonly)
        self._open_transaction = False  # BEGIN sent, no COMMIT/ROLLBACK yet

    def _connection(self) -> psycopg.Connection[Any]:
        if self.raw.closed or self.raw.broken:
            if self._open_transaction:
                raise psycopg.OperationalError("the connection to PostgreSQL was lost during a transaction")
            self.raw = connect(self.url, readonly=self.readonly)
        return self.raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        conn = self._connection()
        if sql in ("COMMIT", "ROLLBACK"):
            self._open_transaction = False  # ended, whether or not the statement gets through
        if params:
            return conn.execute(pg_sql(sql), params)
        return conn.execute(sql)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self._connection().cursor() as cur:
                cur.executemany(pg_sql(sql), rows)

    @property
    def in_transaction(self) -> bool:
        if self.raw.closed:
            return False
        return self.raw.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    def _begin(self) -> None:
        try:
            self.execute("BEGIN")
        except psycopg.OperationalError:
            if not self.raw.broken:
                raise
            self.execute("BEGIN")  # the connection was gone before this transaction: nothing is lost
        self._open_transaction = True

    def rollback(self) -> None:
        self._open_transaction = False
        super().rollback()

    def close(self) -> None:
        self.raw.close()


def open_postgres(url: str, *, readonly: bool = False) -> PgDb:
    return PgDb(url, readonly=readonly)


# SQLSTATE classes that say "the storage", not "this row": connection exception, transaction rollback
# (deadlock, serialization failure: try again), lock not available, insufficient resources (disk
# full, out of memory, too many connections), operator intervention (shutdown, cancel), system
# error (I/O), internal error.
STORAGE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
READ_ONLY_TRANSACTION = "25006"  # a standby, or a database set read-only


def storage_failure(exc: BaseException) -> bool:
    """True when a psycopg error is about the storage (every item would fail the same way now)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:  # raised by the driver itself: no connection, connection lost or closed
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate == READ_ONLY_TRANSACTION or sqlstate[:2] in STORAGE_CLASSES


def permanent(exc: BaseException) -> bool:
    """True when a value of the item cannot be stored as it is (data exception, e.g. a NUL character
    in text, which PostgreSQL refuses): retrying cannot help."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.DataError) and (sqlstate is None or sqlstate.startswith("22"))
