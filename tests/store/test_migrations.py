"""Migrations on a store written by the previous release (tests/fixtures/store_v5.sql, the dump of the store made by
tests/fixtures/make_store_v5.py with that release's code): it upgrades in place, keeps every row, and
this release reads and writes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import pytest

from connector.app import Service
from connector.ingest import Incoming
from connector.store import calls, jobs, migrations, schema
from connector.store.db import StoreTarget, dicts, open_sqlite
from connector.store.writer import StoreWriter, open_write_db
from connector.sync import outbox
from tests.conftest import make_config
from tests.store.test_writer import Answers

FIXTURES = Path(__file__).parent.parent / "fixtures"
RELEASE_V5 = FIXTURES / "store_v5.sql"  # the SQL dump of a store that release wrote
T0 = 1_780_000_000.0

# What make_store_v5.py wrote (checked on the fixture itself, then after the upgrade).
EXPECTED = {
    "events": [(1, "dialer", "c-1", "call.initiated", None), (2, "dialer", "c-1", "call.completed", "connected"),
               (3, "dialer", "c-2", "call.failed", "busy"), (4, "dialer", "c-3", "call.completed", "no_answer"),
               (5, "dialer", "c-4", "call.initiated", None), (6, "dialercx", None, "agent.login", None),
               (7, "dialer", "t-1", "call.completed", "no_answer"),
               (8, "dialer", "c-5", "call.voicemail.detected", "voicemail")],
    "calls": [("dialer", "c-1", "connected", 0), ("dialer", "c-2", "busy", 0), ("dialer", "c-3", "no_answer", 0),
              ("dialer", "c-4", None, 0), ("dialer", "c-5", "voicemail", 0), ("dialer", "t-1", "no_answer", 1)],
    "jobs": [(1, "c-1", "done", 1, 0), (2, "c-2", "dead", 1, 1), (3, "c-3", "pending", 1, 1), (4, "c-5", "pending", 0, 0)],
    "job_steps": [(1, "callback", "done"), (1, "contact", "done"), (1, "note", "done")],
    "contacts": [("+12025550111", "ct-111")],
    "callback_counters": [("+12025550111", 0)],
    "contact_applied": [("+12025550111", 1)],
    "attempts": [(1, "contact.search", 200, "tr-1")],
    "stats": {"stored": 8, "deduped": 1, "rejected:bad_signature": 2, "source_rejected:dialer:bad_signature": 2,
              "processed": 1, "sync_failed": 2, "dead": 1},
}
QUERIES = {
    "events": "SELECT id, source, call_id, event_type, outcome FROM events ORDER BY id",
    "calls": "SELECT source, call_id, outcome, test FROM calls ORDER BY source, call_id",
    "jobs": "SELECT id, call_id, status, attempts, failures FROM jobs ORDER BY id",
    "job_steps": "SELECT job_id, step, state FROM job_steps ORDER BY job_id, step",
    "contacts": "SELECT phone, contact_id FROM contacts",
    "callback_counters": "SELECT phone, count FROM callback_counters",
    "contact_applied": "SELECT phone, job_id FROM contact_applied",
    "attempts": "SELECT job_id, kind, status, trace_id FROM attempts",
}


def contents(conn) -> dict:
    found = {name: [tuple(r) for r in conn.execute(sql).fetchall()] for name, sql in QUERIES.items()}
    found["stats"] = {name: n for name, n in conn.execute("SELECT name, SUM(n) FROM stats_hourly GROUP BY name")}
    return found


def restore_v5(path: Path) -> Path:
    """The previous release's store, restored from its dump into ``path``."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(RELEASE_V5.read_text(encoding="utf-8"))
    finally:
        conn.close()
    return path


@pytest.fixture
def old_store(tmp_path) -> Path:
    return restore_v5(tmp_path / "callsync.db")


def test_the_fixture_is_a_store_of_the_previous_release(tmp_path):
    conn = sqlite3.connect(restore_v5(tmp_path / "v5.db"))
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert contents(conn) == EXPECTED
    finally:
        conn.close()


def test_it_upgrades_in_place_and_keeps_every_row(old_store):
    body_before = sqlite3.connect(old_store).execute("SELECT body FROM events WHERE id = 8").fetchone()[0]
    db = open_write_db(StoreTarget.sqlite(old_store))
    try:
        assert migrations.version(db) == migrations.latest() > 5
        assert contents(db) == EXPECTED
        assert db.execute("SELECT body FROM events WHERE id = 8").fetchone()[0] == body_before  # not UTF-8: as it was
        columns = {r[1] for r in db.execute("PRAGMA table_info(calls)")}
        assert set(schema.CALL_COLUMNS) <= columns  # every column this release writes
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    db = open_write_db(StoreTarget.sqlite(old_store))  # a second start has nothing left to do
    try:
        assert migrations.migrate(db) == migrations.latest() and contents(db) == EXPECTED
    finally:
        db.close()


def test_each_migration_runs_once_in_order_from_the_previous_release(old_store):
    db = open_sqlite(old_store)
    try:
        for number in range(6, migrations.latest() + 1):
            before = contents(db)
            db.raw.execute("BEGIN IMMEDIATE")
            schema.MIGRATIONS[number - 1](schema.sqlite_utils.Database(db.raw))
            db.raw.execute(f"PRAGMA user_version={number}")
            db.raw.execute("COMMIT")
            assert contents(db) == before, f"migration {number} changed rows"
        assert migrations.migrate(db) == migrations.latest()
    finally:
        db.close()


def test_a_store_newer_than_this_release_is_refused(old_store):
    conn = sqlite3.connect(old_store)
    conn.execute(f"PRAGMA user_version={migrations.latest() + 1}")
    conn.close()
    with pytest.raises(migrations.SchemaTooNew, match="upgrade callsync"):
        open_write_db(StoreTarget.sqlite(old_store))


def test_this_release_reads_and_writes_the_upgraded_store(old_store):
    import json

    from connector import formats

    writer = StoreWriter(old_store)
    writer.start()
    try:
        completed = json.dumps({"event": "call.completed", "call_uuid": "c-4", "from": "+12025550100",
                                "to": "+12025550144", "direction": "outbound", "initiated_at": "2026-06-04T09:00:00Z",
                                "answered_at": "2026-06-04T09:00:05Z", "ended_at": "2026-06-04T09:40:00Z"}).encode()
        again = dicts(sqlite3.connect(old_store).execute("SELECT body FROM events WHERE id = 2"))[0]["body"]
        answers = Answers()
        for body in (completed, again):
            event = formats.normalize(body, "application/json", {})[0]
            writer.submit(answers.event(Incoming("dialer", event, body, "application/json", {}, received_at=T0 + 1000)))
        writer.execute_sync(lambda db: None)  # behind the events in the queue: they are written
        assert all(ok for ok, _ in answers)
        answers = [value for _, value in answers]
        assert answers[0].event_id == 9 and answers[0].record.event_count == 2  # refolded with the stored start
        assert answers[1].duplicate  # dedupe keys of the old release still count
        call = writer.execute_sync(lambda db: calls.get_call(db, "dialer", "c-4"))
        assert call["outcome"] == "connected" and [e["id"] for e in call["events"]] == [5, 9]
        claimed = [writer.execute_sync(lambda db: outbox.claim(db, T0 + 500, 3600)) for _ in range(3)]
        assert [job and job["call_id"] for job in claimed] == ["c-5", "c-3", None]  # the new job is due at T0 + 1000
        claimed = writer.execute_sync(lambda db: outbox.claim(db, T0 + 1000, 60))
        assert claimed["call_id"] == "c-4" and claimed["phone"] == "+12025550144"
        assert writer.execute_sync(lambda db: jobs.list_dead(db))[0]["call_id"] == "c-2"
    finally:
        writer.stop()


async def test_an_existing_users_store_upgrades_on_first_start(tmp_path, old_store, source_secrets):
    service = Service(make_config(tmp_path))
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.admin_url}/api/calls/dialer/c-1") as resp:
                call = await resp.json()
            async with http.get(f"{service.admin_url}/healthz") as resp:
                health = await resp.json()
        assert call["outcome"] == "connected" and len(call["events"]) == 2
        assert health["ok"], health
        metrics = await service.metrics()
        assert (metrics["stored"], metrics["dead"]) == (8, 1)
    finally:
        await service.stop()
