"""PostgreSQL failures sorted like SQLite's: storage that fails now (503, retry) or one item that never
can be stored (400); real errors from the test cluster."""

from __future__ import annotations

import psycopg
import pytest

from connector.store import db as dbmod
from connector.store import faults


@pytest.fixture
def pg(pg_url):
    conn = dbmod.open_postgres(pg_url)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT)")
    conn.execute("INSERT INTO t (k, n) VALUES ('a', 1)")
    yield conn
    conn.close()


def error_of(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("no error")


def test_one_item_failures_are_not_storage_failures(pg):
    taken = error_of(lambda: pg.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("a", 2)))  # UNIQUE key
    assert not faults.storage_failure(taken) and not faults.permanent(taken)
    nul = error_of(lambda: pg.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("nul\x00here", 2)))
    assert not faults.storage_failure(nul) and faults.permanent(nul)
    assert isinstance(faults.for_sender(nul), faults.Unstorable)
    huge = error_of(lambda: pg.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("big", 2**70)))
    assert faults.permanent(huge) and isinstance(faults.for_sender(huge), faults.Unstorable)


def test_a_lost_server_a_read_only_database_and_a_deadlock_are_storage_failures(pg, pg_url):
    ro = dbmod.open_postgres(pg_url, readonly=True)
    try:
        refused = error_of(lambda: ro.execute("INSERT INTO t (k, n) VALUES ('b', 1)"))
    finally:
        ro.close()
    assert faults.storage_failure(refused) and isinstance(faults.for_sender(refused), faults.StorageUnavailable)

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pg.raw.info.backend_pid,))
    lost = error_of(lambda: pg.execute("SELECT 1"))
    assert faults.storage_failure(lost)
    closed = dbmod.open_postgres(pg_url)
    closed.raw.close()
    closed._open_transaction = True  # closed in the middle of a transaction: not reopened
    assert faults.storage_failure(error_of(lambda: closed.execute("SELECT 1")))

    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    assert faults.storage_failure(deadlock)  # 40P01: the same write may well succeed when tried again
