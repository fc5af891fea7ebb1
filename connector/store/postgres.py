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
LOCK_TIMEOUT = "5s"  # like SQLite's busy timeout: a write waiting longer on another session's lock fails
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?(?:::)?|%", re.S)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """qmark SQL for psycopg: ``?`` -> ``%s``, ``%`` -> ``%%``; quoted text and comments keep their ``?``.
    A parameter cast to a type (``?::text[]``, the arrays of :func:`connector.store.db.many_rows`) is
    sent in binary (``%b``): no escaping of every quote in an array of JSON texts."""

    def rewrite(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "?::":
            return "%b::"
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
    else:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    # Statements are prepared after a few runs; plan each run for its own rows all the same: a plan
    # made once while a table was small (a sequential scan) would otherwise be kept as it grows.
    conn.execute("SET plan_cache_mode = force_custom_plan")
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


class PgProbe:
    """Can the PostgreSQL store take a write now?  One kept connection (opened again when lost), asked
    whether the server is a standby or the database read-only; nothing is written.  Blocking: run it
    through :class:`connector.store.health.StorageProbe`, which answers within its deadline."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> str | None:
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                             application_name="callsync probe")
            standby, read_only, waiting = self._conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'), "
                "(SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                " AND application_name = 'callsync' AND wait_event_type = 'Lock' AND wait_event <> 'advisory' "
                " AND now() - query_start > interval '1 second')").fetchone()
        except psycopg.Error as exc:
            return "the database does not answer: " + " ".join(str(exc).split())
        if standby:
            return "the database is read-only (a standby server)"
        if read_only == "on":
            return "the database is read-only (default_transaction_read_only)"
        if waiting:
            return "the database is locked by another session (a write has waited over a second)"
        return None


def database_bytes(db: Db) -> int:
    """The store's size on disk: the whole database (tables, indexes, their TOAST)."""
    return int(db.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def storage_failure(exc: BaseException) -> bool:
    """True when a psycopg error is about the storage (every item would fail the same way now)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:  # raised by the driver itself: no connection, connection lost or closed
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate == READ_ONLY_TRANSACTION or sqlstate[:2] in STORAGE_CLASSES


_WHAT = {
    "55P03": "the database is locked by another session",
    "25006": "the database is read-only",
    "53100": "the database server's disk is full",
    "53300": "the database server has too many connections",
    "57P01": "the database server is shutting down",
    "57P03": "the database server is not accepting connections yet",
}


def describe(exc: BaseException) -> str | None:
    """Plain words for a psycopg error's SQLSTATE (None when there are none to add)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:
        return "the database does not answer" if isinstance(exc, psycopg.OperationalError) else None
    if sqlstate in _WHAT:
        return _WHAT[sqlstate]
    return "the connection to the database was lost" if sqlstate.startswith("08") else None


def permanent(exc: BaseException) -> bool:
    """True when a value of the item cannot be stored as it is (data exception, e.g. a NUL character
    in text, which PostgreSQL refuses): retrying cannot help."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.DataError) and (sqlstate is None or sqlstate.startswith("22"))
