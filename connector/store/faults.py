"""What a write failure means: storage that fails now (the sender retries later) or one item
that can never be stored (the sender must not retry).  Pure helpers, no I/O.

A failing batch fails fast: when storage itself fails (locked by another process, disk
full, I/O error, read-only) every item of the batch would fail the same way, so the
writer does not try them one at a time - that would wait out the busy timeout once per
item.  Only errors about one item (a UNIQUE key another process took, a value SQLite
refuses) are retried item by item.
"""

from __future__ import annotations

import sqlite3

# Primary SQLite result codes that say "the storage", not "this row": BUSY, LOCKED, NOMEM,
# READONLY, INTERRUPT, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
STORAGE_CODES = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26})

_WHAT = {
    5: "the database is locked by another process",
    6: "the database is locked",
    8: "the database is read-only",
    10: "disk I/O error",
    13: "the disk is full",
    14: "the database file cannot be opened",
}


class StorageUnavailable(Exception):
    """Storage failed now and may work later: answer 503 + Retry-After."""


class Unstorable(Exception):
    """This item can never be stored as it is: answer 400 with the reason."""


def storage_failure(exc: BaseException) -> bool:
    """True when ``exc`` is about the storage (every item would fail), not about one item."""
    if isinstance(exc, (StorageUnavailable, MemoryError, OSError)):
        return True
    if from_postgres(exc):
        from connector.store import postgres

        return postgres.storage_failure(exc)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:  # raised by the sqlite3 module itself, e.g. on a closed connection
            return isinstance(exc, (sqlite3.ProgrammingError, sqlite3.OperationalError))
        return code & 0xFF in STORAGE_CODES
    return False


def permanent(exc: BaseException) -> bool:
    """True when a value of the item itself cannot be encoded for SQLite (retrying cannot help)."""
    if from_postgres(exc):
        from connector.store import postgres

        return postgres.permanent(exc)
    return isinstance(exc, (UnicodeError, OverflowError, sqlite3.DataError))


def from_postgres(exc: BaseException) -> bool:
    """A psycopg error (the driver is imported only in server mode)."""
    return type(exc).__module__.split(".")[0] == "psycopg"


def describe(exc: BaseException) -> str:
    """One line for logs, health and answers: ``the disk is full (database or disk is full)``."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = " ".join(str(exc).split()) or type(exc).__name__
    what = _WHAT.get(code & 0xFF) if isinstance(code, int) else None
    if from_postgres(exc):
        from connector.store import postgres

        what = postgres.describe(exc)
    return f"{what} ({text})" if what and what not in text else text


def for_sender(exc: BaseException) -> Exception:
    """The exception an event's future gets: StorageUnavailable, Unstorable or ``exc`` itself."""
    if isinstance(exc, (StorageUnavailable, Unstorable)):
        return exc
    if storage_failure(exc):
        return StorageUnavailable(describe(exc))
    if permanent(exc):
        return Unstorable(describe(exc))
    return exc if isinstance(exc, Exception) else RuntimeError(describe(exc))
