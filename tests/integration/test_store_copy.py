"""`callsync store copy --to postgresql://...`: a desktop store moved into an empty PostgreSQL database,
every table, verified by counts and checksums computed on both sides."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid

import aiohttp
import psycopg
import pytest

from connector import secrets
from connector.app import Service
from connector.store import pg_schema
from connector.store.copy import CopyError, copy_store
from connector.store.postgres import open_postgres
from tests.conftest import SECRET, make_config
from tests.fakes.ghl_server import Fault
from tests.integration.test_sync_e2e import FAST, call_event, no_answer, send, settle
from tests.serve_process import start_serve
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.slow
TABLES = ("attempts", "callback_counters", "calls", "contact_applied", "contacts", "events", "job_steps", "jobs",
          "stats_hourly", "worker_state")


@pytest.fixture
async def desktop_store(tmp_path, source_secrets, ghl):
    """A data dir whose SQLite store went through real use: synced calls, a dead letter, a repeat caller's
    callback counter, a rejected request, events that are not about a call."""
    secrets.set_secret("crm:ghl", ghl.token)
    extra = {"crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url} | FAST}}
    svc = Service(make_config(tmp_path, extra=extra))
    await svc.start()
    try:
        ghl.inject("note", Fault.status(422, {"statusCode": 422, "message": ["body too long"]}))
        for n in range(12):
            await send(svc, call_event("call.completed", str(uuid.uuid4()), f"+1202555{n % 5:04d}",
                                       agent="Zoë ✓"))
        for _ in range(2):
            await send(svc, no_answer(str(uuid.uuid4()), "+12025550199"))
        body = dumps({"event": "agent.login", "data": {"agent": "a1"}, "timestamp": "2026-06-04T09:00:00Z"})
        await send(svc, body)
        async with aiohttp.ClientSession() as http:  # a wrong signature: counted, never stored
            async with http.post(f"{svc.hooks_url}/hooks/dialer", data=b"{}", headers={"X-Webhook-Signature": "00"}):
                pass
        await settle(svc)
    finally:
        await svc.stop()
    return tmp_path


def rows(conn, table: str, columns: list[str]) -> list[tuple]:
    cols = ", ".join(columns)
    return sorted((tuple(r) for r in conn.execute(f"SELECT {cols} FROM {table}").fetchall()), key=repr)


def as_stored(value):
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def run_copy(data_dir, url: str, **env) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", "store", "copy", "--data-dir", str(data_dir), "--to", url],
                          capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"} | env)


async def test_copy_moves_every_table_and_prints_counts_and_both_checksums(desktop_store, pg_url):
    done = run_copy(desktop_store, pg_url)
    assert done.returncode == 0, done.stderr
    lite = sqlite3.connect(desktop_store / "callsync.db")
    counts = {t: lite.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts["events"] >= 15 and counts["attempts"] > 0 and counts["callback_counters"] >= 1
    assert lite.execute("SELECT COUNT(*) FROM jobs WHERE status = 'dead'").fetchone()[0] == 1
    for table, n in counts.items():  # the printed count of every table
        assert re.search(rf"^\s+{table}\s+{n} rows\s+\(PostgreSQL: {n}\)$", done.stdout, re.M), (table, done.stdout)
    sums = re.findall(r"(SQLite|PostgreSQL) (sha256-sum:[0-9a-f]{64})", done.stdout)
    assert [s[0] for s in sums] == ["SQLite", "PostgreSQL"] and sums[0][1] == sums[1][1]

    with psycopg.connect(pg_url) as pg:  # the rows themselves, table by table
        for table in TABLES:
            columns = [r[1] for r in lite.execute(f"PRAGMA table_info({table})")]
            float_cols = {r[1] for r in lite.execute(f"PRAGMA table_info({table})") if r[2].upper() == "FLOAT"}
            expected = sorted((tuple(as_stored(v) if c in float_cols else v for c, v in zip(columns, r))
                               for r in rows(lite, table, columns)), key=repr)
            assert rows(pg, table, columns) == expected, table
        # calls keep their order of arrival (SQLite's rowid), and new ids continue after the copied ones
        assert rows(pg, "calls", ["rowid", "call_id"]) == rows(lite, "calls", ["rowid", "call_id"])
        top = lite.execute("SELECT MAX(id) FROM events").fetchone()[0]
        new_id = pg.execute("INSERT INTO events (source, dedupe_key, received_at, event_type, body) "
                            "VALUES ('s', 'k', 0, 't', '') RETURNING id").fetchone()[0]
        assert new_id == top + 1
    lite.close()


async def test_copy_refuses_while_callsync_runs_on_the_data_dir(desktop_store, pg_url):
    proc, _, _ = await start_serve(desktop_store, {"CALLSYNC_SECRET_DIALER": SECRET})
    try:
        done = await asyncio.get_running_loop().run_in_executor(None, run_copy, desktop_store, pg_url)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert done.returncode == 2
    assert "in use by another callsync" in done.stderr and "Traceback" not in done.stderr
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT to_regclass('events')").fetchone()[0] is None  # nothing was touched


async def test_copy_refuses_a_database_that_holds_a_store_already(desktop_store, pg_url):
    assert run_copy(desktop_store, pg_url).returncode == 0
    again = run_copy(desktop_store, pg_url)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_a_password_on_the_command_line_is_refused(tmp_path):
    done = run_copy(tmp_path, "postgresql://callsync:hunter2@db.example/callsync")
    assert done.returncode == 2 and "must not hold a password" in done.stderr
    assert "hunter2" not in done.stderr


async def test_a_copy_that_does_not_verify_keeps_nothing(desktop_store, pg_url):
    pg = open_postgres(pg_url)
    try:
        pg_schema.migrate(pg)
        # A database that silently changes what it is given: the checksums must catch it.
        pg.execute("CREATE FUNCTION mangle() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN IF NEW.id = 3 THEN NEW.phone := '+19999999999'; END IF; RETURN NEW; END $$")
        pg.execute("CREATE TRIGGER mangle BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION mangle()")
        with pytest.raises(CopyError, match="did not verify .*events"):
            copy_store(str(desktop_store / "callsync.db"), pg)
        assert pg.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
        assert pg.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
    finally:
        pg.close()
