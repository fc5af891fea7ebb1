"""Tables of the store and their migrations (``PRAGMA user_version`` counts them).

Created with sqlite-utils so the shape is declared as data; every migration is
append-only and runs once, inside one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

# The calls table as migration 1 created it; later migrations add columns (CALL_COLUMNS has them all).
CALL_COLUMNS_V1 = {
    "source": str,
    "call_id": str,
    "status": str,
    "outcome": str,
    "direction": str,
    "from_number": str,
    "to_number": str,
    "phone": str,
    "initiated_at": str,
    "answered_at": str,
    "ended_at": str,
    "ring_seconds": float,
    "talk_seconds": float,
    "disposition": str,
    "hangup_cause": str,
    "sip_code": int,
    "agent": str,
    "did": str,
    "campaign": str,
    "recording_url": str,
    "answered_by": str,
    "last_sequence": int,
    "last_event_at": str,
    "event_count": int,
    "first_received_at": float,
    "updated_at": float,
}
# Added by _v6_call_details: what AI voice-agent platforms report about a call.
CALL_DETAIL_COLUMNS = {
    "transcript": str,
    "transcript_url": str,
    "summary": str,
    "quality_score": float,
    "cost": float,
    "currency": str,
    "analysis": str,
    "sender_outcome": str,
}
CALL_COLUMNS = CALL_COLUMNS_V1 | {"test": int} | CALL_DETAIL_COLUMNS  # test: 0/1, added by _v5_test_calls


EVENT_COLUMNS = {
    "id": int,
    "source": str,
    "dedupe_key": str,
    "received_at": float,
    "event_type": str,
    "call_id": str,
    "is_call": int,
    "status": str,
    "outcome": str,
    "phone": str,
    "occurred_at": str,
    "sequence": int,
    "content_type": str,
    "headers_json": str,
    "body": bytes,
    "event_json": str,
}


def _v1_receiver(db: sqlite_utils.Database) -> None:
    db["events"].create(
        EVENT_COLUMNS,
        pk="id",
        not_null={"source", "dedupe_key", "received_at", "event_type", "body"},
    )
    db.execute("CREATE UNIQUE INDEX events_dedupe ON events(source, dedupe_key)")
    db["events"].create_index(["source", "call_id"], index_name="events_call")
    db["events"].create_index(["phone"], index_name="events_phone")
    db["events"].create_index(["event_type"], index_name="events_type")
    db["events"].create_index(["received_at"], index_name="events_received")

    db["calls"].create(CALL_COLUMNS_V1, pk=("source", "call_id"), not_null={"source", "call_id"})
    db["calls"].create_index(["phone"], index_name="calls_phone")
    db["calls"].create_index(["updated_at"], index_name="calls_updated")

    # Per-hour counters: received, stored, deduped, rejected:<reason>, ack latency buckets ...
    db["stats_hourly"].create(
        {"hour": int, "name": str, "n": int}, pk=("hour", "name"), not_null={"hour", "name", "n"}
    )


def _v2_sync(db: sqlite_utils.Database) -> None:
    # Outbox: one job per call that reached an outcome; claimed with a lease.
    db["jobs"].create(
        {
            "id": int,
            "source": str,
            "call_id": str,
            "status": str,  # pending | leased | done | dead
            "attempts": int,  # every try, including rate-limited ones
            "failures": int,  # failed tries: index into the retry schedule
            "next_attempt_at": float,
            "lease_until": float,
            "last_error": str,
            "created_at": float,  # when the event that finished the call was received
            "updated_at": float,
            "done_at": float,
        },
        pk="id",
        not_null={"source", "call_id", "status", "attempts", "failures", "created_at"},
        defaults={"attempts": 0, "failures": 0},
    )
    db.execute("CREATE UNIQUE INDEX jobs_call ON jobs(source, call_id)")
    db["jobs"].create_index(["status", "next_attempt_at"], index_name="jobs_due")
    db["jobs"].create_index(["status", "done_at"], index_name="jobs_done")
    # Steps of a job already carried out (or started: outcome unknown), for idempotent retries.
    db["job_steps"].create(
        {"job_id": int, "step": str, "state": str, "result": str, "at": float},
        pk=("job_id", "step"),
        not_null={"job_id", "step", "state"},
    )
    # Delivery log: every CRM request.
    db["attempts"].create(
        {
            "id": int,
            "job_id": int,
            "at": float,
            "kind": str,
            "method": str,
            "path": str,
            "status": int,
            "response": str,
            "trace_id": str,
            "duration_ms": float,
            "error": str,
        },
        pk="id",
    )
    db["attempts"].create_index(["job_id"], index_name="attempts_job")
    # Contact cache (phone -> CRM contact, its tags and fields as last seen) and callback counters.
    db["contacts"].create(
        {"phone": str, "contact_id": str, "tags_json": str, "fields_json": str, "checked_at": float},
        pk="phone",
    )
    db["callback_counters"].create({"phone": str, "count": int, "updated_at": float}, pk="phone")
    db["worker_state"].create({"key": str, "value": str}, pk="key")


def _v3_event_lookups(db: sqlite_utils.Database) -> None:
    # Event searches by call id alone and pages filtered by source (window, admin API). Without these,
    # on a store without ANALYZE statistics, SQLite scans the whole table for a call id and sorts every
    # event of a source for its newest page (0.1-0.5 s warm at a million events, far more cold).
    # An index on (source) is ordered by (source, rowid): "newest of a source" walks it backwards.
    db["events"].create_index(["call_id"], index_name="events_call_id", if_not_exists=True)
    db["events"].create_index(["source"], index_name="events_source", if_not_exists=True)


def _v4_contact_order(db: sqlite_utils.Database) -> None:
    # Jobs of one contact run in the order their calls ended: each job's contact (E.164 phone) and its
    # call's end time (epoch seconds), filled in when the job is first considered for a claim.
    db.execute("ALTER TABLE jobs ADD COLUMN phone TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN call_end FLOAT")
    # Open jobs by contact (phone IS NULL: not keyed yet); a contact's earlier open job is one step away.
    db.execute("CREATE INDEX jobs_contact_open ON jobs(phone, call_end, id) WHERE status IN ('pending', 'leased')")
    # The newest call whose tags and fields were applied to each contact: an older call is "stale".
    db.execute("CREATE TABLE contact_applied (phone TEXT PRIMARY KEY, call_end FLOAT, job_id INTEGER, at FLOAT)")


def _v5_test_calls(db: sqlite_utils.Database) -> None:
    # Calls made of test events (the window's "send test event"): shown as tests, never synced.
    db.execute("ALTER TABLE calls ADD COLUMN test INTEGER NOT NULL DEFAULT 0")


def _v6_call_details(db: sqlite_utils.Database) -> None:
    # Transcript (text or link), summary, quality score, cost and currency, analysis results and an
    # outcome the sender declared; older calls keep NULL (their events are refolded when they get more).
    sql_types = {str: "TEXT", float: "FLOAT"}
    for name, kind in CALL_DETAIL_COLUMNS.items():
        db.execute(f"ALTER TABLE calls ADD COLUMN {name} {sql_types[kind]}")


def _v7_automations(db: sqlite_utils.Database) -> None:
    # Alerts raised by the automations (connector/automations): one row per crossing, under its stable id.
    db.execute(
        "CREATE TABLE alerts (id TEXT PRIMARY KEY, recipe TEXT NOT NULL, subject TEXT NOT NULL, level TEXT NOT NULL, "
        "created_at FLOAT NOT NULL, message TEXT NOT NULL, fields_json TEXT, evidence_json TEXT, event_id INTEGER, "
        "acknowledged_at FLOAT)"
    )
    db.execute("CREATE INDEX alerts_created ON alerts(created_at)")
    # Each threshold's armed/tripped state and its crossing count (which names the next alert).
    db.execute(
        "CREATE TABLE automation_state (recipe TEXT NOT NULL, subject TEXT NOT NULL, level TEXT NOT NULL, "
        "armed INTEGER NOT NULL, seq INTEGER NOT NULL, updated_at FLOAT, PRIMARY KEY (recipe, subject, level))"
    )
    # Outbox job kinds: 'crm' (a call for the CRM), 'action', 'notify', 'webhook' (an alert for a sink).
    db.execute("ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'crm'")
    db.execute("CREATE INDEX jobs_alert_due ON jobs(status, next_attempt_at) WHERE kind <> 'crm'")


def _v8_gaps(db: sqlite_utils.Database) -> None:
    # Where an event came from: the sender's webhook, or the provider's call log (reconciliation).
    db.execute("ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'webhook'")
    # When callsync was receiving: one row per stretch without a pause (a restart or a sleep starts another).
    db.execute("CREATE TABLE heartbeat (started_at FLOAT PRIMARY KEY, last_beat FLOAT NOT NULL)")
    # Reconciliation per source: where the next call-log listing starts, and how the last run went.
    db.execute("CREATE TABLE reconcile_state (source TEXT PRIMARY KEY, since FLOAT, last_run FLOAT, last_ok FLOAT, "
               "last_error TEXT)")
    # Calls reconciliation filled in (no webhook at all) or completed (webhooks stopped), by the call's start.
    db.execute("CREATE TABLE reconciled (source TEXT NOT NULL, call_id TEXT NOT NULL, kind TEXT NOT NULL, "
               "call_start FLOAT, at FLOAT NOT NULL, PRIMARY KEY (source, call_id))")
    db.execute("CREATE INDEX reconciled_start ON reconciled(call_start)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_receiver, _v2_sync, _v3_event_lookups, _v4_contact_order, _v5_test_calls, _v6_call_details,
    _v7_automations, _v8_gaps,
]


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every connection of the store needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema; returns the version now in force."""
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # A new store gives freed pages back to the OS (retention); this must precede the first table.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    db = sqlite_utils.Database(conn)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def prepare(path: str) -> None:
    """Create or migrate the store file (for tools that only read it)."""
    conn = connect(path)
    try:
        migrate(conn)
    finally:
        conn.close()
