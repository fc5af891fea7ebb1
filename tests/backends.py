"""One test suite for both stores: the ``backend`` fixture runs a test on SQLite and on PostgreSQL.

Modules listed in :data:`BOTH` (and tests/store, through its ``target`` fixture) run every test
twice, ``[sqlite]`` and ``[postgres]``.  On PostgreSQL the test gets a fresh database on the test
cluster (tests/pg.py): services built with ``make_config`` use it (``[store] url``), and so do
``callsync`` child processes (``CALLSYNC_STORE_URL`` in the environment they inherit).  A test that
is about the SQLite file itself (locks, a full disk, the file's integrity) is marked
``@pytest.mark.sqlite_only`` and runs once; one about the PostgreSQL server (a read-only database, a
server that went away) is marked ``@pytest.mark.postgres_only``.

``Backend.query(data_dir, sql, params)`` reads the store of a data dir whatever the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SQLITE, POSTGRES = "sqlite", "postgres"
# Store, receiver, sync and crash tests: each runs on both engines.
BOTH = {
    "test_admin_guard", "test_apply_config", "test_bad_input", "test_crash", "test_export", "test_prometheus", "test_receiver",
    "test_retention", "test_senders", "test_storage_faults", "test_sync_crash", "test_sync_e2e",
    "test_sync_faults", "test_worker_lifecycle", "test_reconcile_service", "test_gaps",
}


class Backend:
    def __init__(self, name: str, url: str = "") -> None:
        self.name = name
        self.url = url  # "" on SQLite

    def target(self, data_dir: Path):
        from connector.store.db import StoreTarget

        return StoreTarget.postgres(self.url) if self.url else StoreTarget.sqlite(Path(data_dir) / "callsync.db")

    def query(self, data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a qmark query on the store of ``data_dir`` (its SQLite file, or this PostgreSQL database)."""
        from connector.store.db import open_db

        db = open_db(self.target(data_dir), readonly=True)
        try:
            return [tuple(r) for r in db.execute(sql, params).fetchall()]
        finally:
            db.close()


CURRENT = Backend(SQLITE)  # the running test's backend (make_config reads it)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):  # a test's own argument of that name
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    marker = metafunc.definition.get_closest_marker
    if marker("postgres_only"):
        names = [POSTGRES]
    elif module in BOTH and marker("sqlite_only") is None:
        names = [SQLITE, POSTGRES]
    else:
        names = [SQLITE]
    metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, memory_keyring, monkeypatch: pytest.MonkeyPatch):
    """The store this test runs on (see the module docstring)."""
    global CURRENT
    name = getattr(request, "param", SQLITE)
    if name == POSTGRES:
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("CALLSYNC_STORE_URL", url)
        CURRENT = Backend(POSTGRES, url)
    else:
        CURRENT = Backend(SQLITE)
    try:
        yield CURRENT
    finally:
        CURRENT = Backend(SQLITE)
