"""PostgreSQL's schema is SQLite's: the same numbered migrations give the same tables, columns,
types and indexes, recorded in the database; several processes starting at once migrate once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from connector.store import db as dbmod
from connector.store import pg_schema

SQLITE_TO_PG = {"INTEGER": "bigint", "FLOAT": "double precision", "REAL": "double precision",
                "TEXT": "text", "BLOB": "bytea"}


def sqlite_schema(path) -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    from connector.store import schema

    conn = schema.connect(str(path))
    try:
        schema.migrate(conn)
        tables = {}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            tables[name] = [(col[1], SQLITE_TO_PG[col[2].upper()]) for col in conn.execute(f"PRAGMA table_info({name})")]
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'")}
        return tables, indexes
    finally:
        conn.close()


def pg_schema_of(db: dbmod.Db) -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in db.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ):
        tables.setdefault(table, []).append((column, kind))
    indexes = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                        "AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'")}
    return tables, indexes


@pytest.fixture
def pg(pg_url):
    conn = dbmod.open_postgres(pg_url)
    yield conn
    conn.close()


def test_postgres_gets_the_tables_columns_types_and_indexes_sqlite_gets(pg, tmp_path):
    lite_tables, lite_indexes = sqlite_schema(tmp_path / "store.db")
    assert pg_schema.migrate(pg) == len(pg_schema.MIGRATIONS)
    tables, indexes = pg_schema_of(pg)
    assert tables.pop("schema_version") == [("version", "integer"), ("applied_at", "double precision")]
    assert ("rowid", "bigint") in tables["calls"]  # SQLite's implicit row number, explicit here
    tables["calls"] = [c for c in tables["calls"] if c[0] != "rowid"]
    assert tables == lite_tables
    assert indexes == lite_indexes


def test_migrations_are_recorded_and_run_once(pg):
    assert pg_schema.migrate(pg, upto=2) == 2
    assert pg.execute("SELECT to_regclass('contact_applied')").fetchone()[0] is None  # migration 4 not yet
    with pg.transaction():  # data written by the older schema survives the upgrade
        pg.execute("INSERT INTO jobs (source, call_id, status, created_at) VALUES (?, ?, ?, ?)", ("s", "c", "pending", 1.0))
    assert pg_schema.migrate(pg) == len(pg_schema.MIGRATIONS)
    assert pg_schema.migrate(pg) == len(pg_schema.MIGRATIONS)  # nothing left to do
    assert [r[0] for r in pg.execute("SELECT version FROM schema_version ORDER BY version")] == list(
        range(1, len(pg_schema.MIGRATIONS) + 1))
    assert pg.execute("SELECT source, call_id, phone FROM jobs").fetchall() == [("s", "c", None)]


def test_processes_starting_together_migrate_once(pg_url):
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        db = dbmod.open_postgres(pg_url)
        try:
            start.wait()
            pg_schema.migrate(db)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(pg_schema.MIGRATIONS)


def test_a_store_from_a_newer_callsync_is_refused(pg):
    pg_schema.migrate(pg)
    with pg.transaction():
        pg.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (len(pg_schema.MIGRATIONS) + 1, 0.0))
    with pytest.raises(pg_schema.SchemaTooNew, match="upgrade callsync"):
        pg_schema.migrate(pg)
