"""Bring a store to the newest schema, on either engine; an existing user's store upgrades in place.

The migrations are numbered and append-only: on SQLite they are the sqlite-utils functions of
:mod:`connector.store.schema` (the version is ``PRAGMA user_version``), on PostgreSQL the SQL of
:mod:`connector.store.pg_schema` with the same numbers (recorded in ``schema_version``).  Each runs
once, in its own transaction.  tests/store/test_migrations.py upgrades a store written by the
release before each one (tests/fixtures/).
"""

from __future__ import annotations

from connector.store import pg_schema, schema
from connector.store.db import POSTGRES, Db, SqliteDb
from connector.store.pg_schema import SchemaTooNew

__all__ = ["SchemaTooNew", "latest", "migrate", "version"]


def latest() -> int:
    return len(schema.MIGRATIONS)


def version(db: Db) -> int:
    if db.dialect == POSTGRES:
        return pg_schema.version(db)
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: Db) -> int:
    """Run the migrations the store has not had yet; returns the version now in force."""
    if db.dialect == POSTGRES:
        return pg_schema.migrate(db)
    assert isinstance(db, SqliteDb)
    found = version(db)
    if found > latest():
        raise SchemaTooNew(f"the store {db.path} has schema version {found}, newer than this callsync knows "
                          f"({latest()}): upgrade callsync")
    return schema.migrate(db.raw)
