"""Read queries only the window needs (run on the store's reader threads, never on the event loop)."""

from __future__ import annotations

import re
import sqlite3

_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]+$")


def search_kind(text: str) -> str:
    """What a search box entry probably is: ``phone`` (7+ digits) or ``call_id``."""
    text = text.strip()
    digits = sum(c.isdigit() for c in text)
    return "phone" if _PHONE_CHARS.match(text) and digits >= 7 else "call_id"


def outcome_minutes(conn: sqlite3.Connection, since: float) -> list[tuple[int, str, int]]:
    return conn.execute(
        "SELECT CAST(received_at / 60 AS INTEGER) * 60 AS minute, COALESCE(outcome, '') AS outcome, COUNT(*) "
        "FROM events WHERE received_at >= ? GROUP BY minute, outcome",
        (since,),
    ).fetchall()


def distinct_event_types(conn: sqlite3.Connection) -> list[str]:
    """Hop from one value to the next along the events_type index: ~0.3 ms at a million events,
    where ``SELECT DISTINCT`` reads the whole index (~60 ms) on a store without ANALYZE statistics."""
    return [r[0] for r in conn.execute(
        "WITH RECURSIVE t(v) AS (SELECT MIN(event_type) FROM events UNION ALL "
        "SELECT (SELECT MIN(event_type) FROM events WHERE event_type > t.v) FROM t WHERE t.v IS NOT NULL) "
        "SELECT v FROM t WHERE v IS NOT NULL"
    )]


def dead_job_ids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'dead' ORDER BY id")]


def job_states(conn: sqlite3.Connection, job_ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        for status, n in conn.execute(
            f"SELECT status, COUNT(*) FROM jobs WHERE id IN ({','.join('?' for _ in chunk)}) GROUP BY status", chunk
        ):
            counts[status] = counts.get(status, 0) + n
    return counts


