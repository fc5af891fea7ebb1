"""Tables of the store and their migrations (``PRAGMA user_version`` counts them).

Created with sqlite-utils so the shape is declared as data; every migration is
append-only and runs once, inside one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

CALL_COLUMNS = {
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


def _v1_receiver(db: sqlite_utils.Database) -> None:
    db["events"].create(
        {
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
        },
        pk="id",
        not_null={"source", "dedupe_key", "received_at", "event_type", "body"},
    )
    db.execute("CREATE UNIQUE INDEX events_dedupe ON events(source, dedupe_key)")
    db["events"].create_index(["source", "call_id"], index_name="events_call")
    db["events"].create_index(["phone"], index_name="events_phone")
    db["events"].create_index(["event_type"], index_name="events_type")
    db["events"].create_index(["received_at"], index_name="events_received")

    db["calls"].create(CALL_COLUMNS, pk=("source", "call_id"), not_null={"source", "call_id"})
    db["calls"].create_index(["phone"], index_name="calls_phone")
    db["calls"].create_index(["updated_at"], index_name="calls_updated")

    # Per-hour counters: received, stored, deduped, rejected:<reason>, ack latency buckets ...
    db["stats_hourly"].create(
        {"hour": int, "name": str, "n": int}, pk=("hour", "name"), not_null={"hour", "name", "n"}
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1_receiver]


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
