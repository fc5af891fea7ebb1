"""Fixtures for the store's own tests: a fresh store, opened through the same adapter the service uses."""

from __future__ import annotations

import pytest

from connector.store import db as dbmod


@pytest.fixture(params=[dbmod.SQLITE, dbmod.POSTGRES])
def target(request, tmp_path) -> dbmod.StoreTarget:
    """Where a test's store lives: a SQLite file in the test's temp dir, or a fresh database on the
    test PostgreSQL cluster (tests/pg.py); every store test runs on both."""
    if request.param == dbmod.POSTGRES:
        return dbmod.StoreTarget.postgres(request.getfixturevalue("pg_url"))
    return dbmod.StoreTarget.sqlite(tmp_path / "store.db")


@pytest.fixture
def raw_db(target):
    """A connection to an empty database (no tables)."""
    conn = dbmod.open_db(target)
    yield conn
    conn.close()
