"""The outbox: SQL on the writer connection (every function runs inside the writer's transaction).

Jobs are named by :func:`jobs_on_outcome`, a store hook, and written by the same
statement that stored the event which finished the call.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from connector.calls import instant
from connector.model import CallRecord
from connector.store.writer import Stored, add_counts, hour_of
from connector.sync.rules import PlanError, to_e164

# Steps whose outcome at the CRM is unknown after a crash are re-checked before re-posting.
CHECKED_STEPS = ("note", "task")


def bump(conn: sqlite3.Connection, name: str, at: float, n: int = 1) -> None:
    add_counts(conn, {(hour_of(at), name): n})


def jobs_on_outcome(stored: list[Stored]) -> list[tuple[str, str, float]]:
    """Store hook: one job ``(source, call_id, received_at)`` for each call that reached its
    outcome with these new events (the writer inserts them with the events; a call already
    queued keeps its job)."""
    return [
        (value.source, value.record.call_id, value.received_at)
        for value in stored
        if value.record is not None and value.record.outcome and not value.record.test
        and (value.before is None or not value.before.outcome)
    ]


# A job waits while another open job of its contact is earlier (its call ended before, or at the same
# time with a lower id) or holds a live lease: a contact's jobs run one at a time, in call-end order,
# also across processes.  A job not keyed yet (no phone) never waits.
_WAITING = (
    "EXISTS (SELECT 1 FROM jobs e WHERE e.phone = jobs.phone AND e.status IN ('pending', 'leased') "
    "AND e.id != jobs.id AND (e.call_end < jobs.call_end OR (e.call_end = jobs.call_end AND e.id < jobs.id) "
    "OR (e.status = 'leased' AND e.lease_until >= :now)))"
)


def call_end(call: dict[str, Any] | None, received_at: float) -> float:
    """When the call ended (epoch seconds): its end time, else its last event, else when it was received."""
    for name in ("ended_at", "last_event_at", "answered_at", "initiated_at"):
        moment = instant((call or {}).get(name))
        if moment > instant(None):  # unparseable or missing: the epoch
            return moment.timestamp()
    return received_at


def key_jobs(conn: sqlite3.Connection, region: str) -> None:
    """Give every open job its contact (E.164 phone) and its call's end time, once."""
    rows = conn.execute(
        "SELECT j.id, j.created_at, c.* FROM jobs j LEFT JOIN calls c ON c.source = j.source AND c.call_id = j.call_id "
        "WHERE j.phone IS NULL AND j.status IN ('pending', 'leased')"
    )
    cols = [d[0] for d in rows.description]
    keys = []
    for row in rows.fetchall():
        job_id, created_at, call = row[0], row[1], dict(zip(cols[2:], row[2:]))
        try:
            phone = to_e164(CallRecord.from_dict(call).phone, region) if call["call_id"] else None
        except PlanError:
            phone = None
        # A call without a usable number fails alone (dead letter): it shares no contact.
        keys.append((phone or f"?{job_id}", call_end(call if call["call_id"] else None, created_at), job_id))
    conn.executemany("UPDATE jobs SET phone = ?, call_end = ? WHERE id = ?", keys)


def claim(conn: sqlite3.Connection, now: float, lease_seconds: float, region: str = "US") -> dict[str, Any] | None:
    """Take the most overdue job (or one whose lease expired: its worker died) that does not wait for
    another job of its contact, with its call's record under ``"call"`` (None if not in the store)."""
    key_jobs(conn, region)
    # Two statements, so each walks an index in order and stops at the first job that waits for nobody
    # (one OR-ed statement would sort every due job first).
    args = {"now": now}
    row = conn.execute(
        f"SELECT id, phone FROM jobs WHERE status = 'leased' AND lease_until < :now AND NOT {_WAITING} "
        "ORDER BY id LIMIT 1", args
    ).fetchone()
    if row is not None:  # its worker died, maybe in the middle of a write: the contact is re-read
        distrust_contact(conn, row[1])
    else:
        row = conn.execute(
            f"SELECT id FROM jobs WHERE status = 'pending' AND next_attempt_at <= :now AND NOT {_WAITING} "
            "ORDER BY next_attempt_at, id LIMIT 1", args
        ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE jobs SET status = 'leased', lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
        (now + lease_seconds, now, row[0]),
    )
    job = dict(conn.execute("SELECT * FROM jobs WHERE id = ?", (row[0],)).fetchone())
    call = conn.execute("SELECT * FROM calls WHERE source = ? AND call_id = ?", (job["source"], job["call_id"])).fetchone()
    job["call"] = dict(call) if call is not None else None
    return job


def next_due(conn: sqlite3.Connection, now: float) -> float | None:
    """When a job may next be claimable: the earliest due time of a job that waits for nobody, or the
    earliest lease expiry (None when nothing is open).  Read-only."""
    pending = conn.execute(
        f"SELECT next_attempt_at FROM jobs WHERE status = 'pending' AND NOT {_WAITING} ORDER BY next_attempt_at, id LIMIT 1",
        {"now": now},
    ).fetchone()
    leased = conn.execute("SELECT MIN(lease_until) FROM jobs WHERE status = 'leased'").fetchone()
    times = [t for t in (pending[0] if pending else None, leased[0]) if t is not None]
    return min(times) if times else None


def take_turn(conn: sqlite3.Connection, phone: str, end: float, job_id: int, at: float) -> int | None:
    """Record this job's call as the newest applied to the contact and return None; or, when a call
    that ended later was applied already, return that call's job id (this job is stale: it may only
    add its note and task)."""
    row = conn.execute("SELECT call_end, job_id FROM contact_applied WHERE phone = ?", (phone,)).fetchone()
    if row is not None and (row[0], row[1]) > (end, job_id):
        return int(row[1])
    conn.execute(
        "INSERT INTO contact_applied (phone, call_end, job_id, at) VALUES (?,?,?,?) ON CONFLICT(phone) DO UPDATE "
        "SET call_end = excluded.call_end, job_id = excluded.job_id, at = excluded.at",
        (phone, end, job_id, at),
    )
    return None


def distrust_contact(conn: sqlite3.Connection, phone: str | None) -> None:
    """After a write whose result is unknown: re-read the contact before the next diff."""
    conn.execute("UPDATE contacts SET checked_at = NULL WHERE phone = ?", (phone,))


def steps(conn: sqlite3.Connection, job_id: int) -> dict[str, tuple[str, Any]]:
    return {
        step: (state, json.loads(result) if result else None)
        for step, state, result in conn.execute(
            "SELECT step, state, result FROM job_steps WHERE job_id = ?", (job_id,)
        )
    }


def set_step(conn: sqlite3.Connection, job_id: int, step: str, state: str, result: Any, at: float) -> None:
    conn.execute(
        "INSERT INTO job_steps (job_id, step, state, result, at) VALUES (?,?,?,?,?) "
        "ON CONFLICT(job_id, step) DO UPDATE SET state = excluded.state, result = excluded.result, at = excluded.at",
        (job_id, step, state, json.dumps(result), at),
    )


def count_callback(
    conn: sqlite3.Connection, job_id: int, phone: str, count: int, result: dict[str, Any], at: float
) -> None:
    """Write the new counter value and mark the step done in one transaction: never counted twice."""
    conn.execute(
        "INSERT INTO callback_counters (phone, count, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(phone) DO UPDATE SET count = excluded.count, updated_at = excluded.updated_at",
        (phone, count, at),
    )
    set_step(conn, job_id, "callback", "done", {"count": count} | result, at)


def complete(conn: sqlite3.Connection, job_id: int, now: float) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'done', done_at = ?, lease_until = NULL, last_error = NULL, updated_at = ? "
        "WHERE id = ?",
        (now, now, job_id),
    )
    bump(conn, "processed", now)


def retry_later(conn: sqlite3.Connection, job_id: int, at: float, error: str, now: float, *, failure: bool) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'pending', next_attempt_at = ?, lease_until = NULL, last_error = ?, "
        "failures = failures + ?, updated_at = ? WHERE id = ?",
        (at, error, 1 if failure else 0, now, job_id),
    )
    if failure:
        bump(conn, "sync_failed", now)


def kill(conn: sqlite3.Connection, job_id: int, error: str, now: float) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'dead', lease_until = NULL, last_error = ?, failures = failures + 1, "
        "updated_at = ? WHERE id = ?",
        (error, now, job_id),
    )
    bump(conn, "sync_failed", now)
    bump(conn, "dead", now)


def _selection(
    source: str | None, call_id: str | None, since: float | None, until: float | None, time_column: str
) -> tuple[list[str], list[Any]]:
    """WHERE terms for one call and/or a time range (jobs by creation, calls by last update)."""
    where: list[str] = []
    args: list[Any] = []
    if source and call_id:
        where.append("source = ? AND call_id = ?")
        args += [source, call_id]
    if since is not None:
        where.append(f"{time_column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{time_column} < ?")
        args.append(until)
    return where, args


def replay(
    conn: sqlite3.Connection,
    now: float,
    *,
    dead: bool = False,
    source: str | None = None,
    call_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    job_ids: list[int] | None = None,
) -> int:
    """Re-queue jobs. Finished calls in a time range that never had a job get one.

    Dead jobs keep the steps they finished. Replaying a job that was done re-applies tags and
    fields, and re-checks (not blindly re-posts) its note and task; a callback counter is never
    counted twice.
    """
    where, args = _selection(source, call_id, since, until, "created_at")
    if dead:
        where.append("status = 'dead'")
    if job_ids is not None:
        where.append(f"id IN ({','.join('?' for _ in job_ids)})")
        args += job_ids
    if not where:
        raise ValueError("replay needs --dead, --call or --since")
    created = 0
    if not dead and job_ids is None:
        call_where, call_args = _selection(source, call_id, since, until, "updated_at")
        call_where.append("outcome IS NOT NULL")
        cur = conn.execute(
            "INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at) "
            f"SELECT source, call_id, 'pending', 0, 0, ?, updated_at, ? FROM calls WHERE {' AND '.join(call_where)} "
            "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.source = calls.source AND j.call_id = calls.call_id)",
            [now, now, *call_args],
        )
        created = cur.rowcount
    ids = [
        r[0]
        for r in conn.execute(f"SELECT id FROM jobs WHERE status != 'leased' AND {' AND '.join(where)}", args)
    ]
    for job_id in ids:
        conn.execute(
            "DELETE FROM job_steps WHERE job_id = ? AND step NOT IN ('callback', 'contact', 'note', 'task')",
            (job_id,),
        )
        conn.execute(
            f"UPDATE job_steps SET state = 'started' WHERE job_id = ? AND step IN "
            f"({','.join('?' for _ in CHECKED_STEPS)}) AND state = 'done' "
            "AND (SELECT status FROM jobs WHERE id = ?) = 'done'",
            (job_id, *CHECKED_STEPS, job_id),
        )
        conn.execute(
            "UPDATE jobs SET status = 'pending', failures = 0, next_attempt_at = ?, last_error = NULL, "
            "done_at = NULL, updated_at = ? WHERE id = ?",
            (now, now, job_id),
        )
    return len(ids) + created


def discard(conn: sqlite3.Connection, job_ids: list[int], now: float) -> int:
    if not job_ids:
        return 0
    cur = conn.execute(
        f"UPDATE jobs SET status = 'discarded', updated_at = ? WHERE status = 'dead' AND id IN "
        f"({','.join('?' for _ in job_ids)})",
        (now, *job_ids),
    )
    return cur.rowcount


def record_attempts(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO attempts (job_id, at, kind, method, path, status, response, trace_id, duration_ms, error) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def cache_contact(conn: sqlite3.Connection, phone: str, contact: dict[str, Any], at: float) -> None:
    fields = {f.get("id"): f.get("value", f.get("field_value")) for f in contact.get("customFields") or []}
    conn.execute(
        "INSERT INTO contacts (phone, contact_id, tags_json, fields_json, checked_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT(phone) DO UPDATE SET contact_id = excluded.contact_id, tags_json = excluded.tags_json, "
        "fields_json = excluded.fields_json, checked_at = excluded.checked_at",
        (phone, contact["id"], json.dumps(contact.get("tags") or []), json.dumps(fields), at),
    )


def update_contact_cache(
    conn: sqlite3.Connection, phone: str, tags: list[str] | None = None, fields: dict[str, Any] | None = None
) -> None:
    if tags is not None:
        conn.execute("UPDATE contacts SET tags_json = ? WHERE phone = ?", (json.dumps(tags), phone))
    if fields is not None:
        conn.execute("UPDATE contacts SET fields_json = ? WHERE phone = ?", (json.dumps(fields), phone))


def set_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO worker_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )
