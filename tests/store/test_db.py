"""The driver adapter: explicit transactions, savepoints, rows by name."""

from __future__ import annotations

import pytest

from connector.store import db as dbmod


def test_a_transaction_commits_at_the_end_and_rolls_back_on_error(raw_db, target):
    raw_db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)")
    with raw_db.transaction():
        raw_db.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("a", 1))
        assert raw_db.in_transaction
    assert not raw_db.in_transaction
    with pytest.raises(ZeroDivisionError):
        with raw_db.transaction():
            raw_db.execute("INSERT INTO t (k, n) VALUES (?, ?)", ("b", 2))
            1 / 0
    other = dbmod.open_db(target, readonly=True)
    try:
        assert other.execute("SELECT k, n FROM t").fetchall() == [("a", 1)]
    finally:
        other.close()


def test_a_savepoint_undoes_only_its_own_writes(raw_db):
    raw_db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    with raw_db.transaction():
        raw_db.execute("INSERT INTO t (k) VALUES ('kept')")
        with pytest.raises(ValueError):
            with raw_db.savepoint():
                raw_db.execute("INSERT INTO t (k) VALUES ('undone')")
                raise ValueError
        with raw_db.savepoint():
            raw_db.execute("INSERT INTO t (k) VALUES ('also kept')")
    assert sorted(r[0] for r in raw_db.execute("SELECT k FROM t")) == ["also kept", "kept"]


def test_rows_by_name_and_sql_helpers(raw_db):
    raw_db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    with raw_db.transaction():
        cur = raw_db.execute(f"INSERT INTO t (name) VALUES {dbmod.values_rows(3, 1)} RETURNING id", ("x", "y", "z"))
        assert [r[0] for r in cur.fetchall()] == [1, 2, 3]
    assert dbmod.dicts(raw_db.execute(f"SELECT id, name FROM t WHERE id IN ({dbmod.marks(2)}) ORDER BY id", (1, 3))) == [
        {"id": 1, "name": "x"}, {"id": 3, "name": "z"}]
    assert dbmod.one_dict(raw_db.execute("SELECT name FROM t WHERE id = ?", (9,))) is None


def test_a_target_names_its_dialect_and_never_shows_a_password():
    assert dbmod.StoreTarget.sqlite("/tmp/x.db").dialect == "sqlite"
    pg = dbmod.StoreTarget.postgres("postgresql://callsync:hunter2@db.example/callsync")
    assert pg.dialect == "postgres" and "hunter2" not in pg.describe() and "db.example" in pg.describe()
