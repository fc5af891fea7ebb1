"""The outbox: ``jobs`` (one per call due for the CRM), ``job_steps`` (what a job already did) and
``attempts`` (the delivery log: every CRM request).  All of the store's SQL about jobs is here.

Writes run inside the writer's transaction.  A job is claimed with a lease; a contact's jobs are
handed out one at a time, in the order their calls ended (``phone`` and ``call_end``, filled in by
:func:`set_keys` before a claim), also across processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from connector.metrics import percentile
from connector.store import stats
from connector.store.db import POSTGRES, Db, dicts, many_rows, marks, one_dict, values_rows
from connector.store.events import PAGE_MAX

OPEN = "status IN ('pending', 'leased')"
# Steps whose outcome at the CRM is unknown after a crash are re-checked before re-posting.
CHECKED_STEPS = ("note", "task")
# Steps a replay keeps: the contact found, the callback counted, the note and task (re-checked).
KEPT_STEPS = ("callback", "contact", "note", "task")

# A job waits while another open job of its contact is earlier (its call ended before, or at the same
# time with a lower id) or holds a live lease (parameter: now).  A job not keyed yet never waits.
_WAITING = (
    "EXISTS (SELECT 1 FROM jobs e WHERE e.phone = jobs.phone AND e.status IN ('pending', 'leased') "
    "AND e.id != jobs.id AND (e.call_end < jobs.call_end OR (e.call_end = jobs.call_end AND e.id < jobs.id) "
    "OR (e.status = 'leased' AND e.lease_until >= ?)))"
)


def queue(db: Db, jobs: Sequence[tuple[str, str, float]]) -> None:
    """One pending job per ``(source, call_id, at)``, due at once; a call that has a job keeps it."""
    if jobs:
        source, params = many_rows(db, (str, str, float), jobs)
        db.execute(
            f"WITH j (source, call_id, at) AS ({source}) "
            "INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at) "
            "SELECT source, call_id, 'pending', 0, 0, at, at, at FROM j "
            "WHERE true ON CONFLICT (source, call_id) DO NOTHING",  # WHERE: SQLite's parser needs it before ON CONFLICT
            params,
        )


# -- claiming ----------------------------------------------------------------------------


def unkeyed(db: Db) -> list[tuple[int, float, dict[str, Any] | None]]:
    """Open jobs without a contact key yet: ``(job id, created_at, the call's row or None)``."""
    rows = db.execute(
        "SELECT j.id, j.created_at, c.* FROM jobs j LEFT JOIN calls c ON c.source = j.source AND c.call_id = j.call_id "
        f"WHERE j.phone IS NULL AND j.{OPEN} AND j.kind = 'crm' ORDER BY j.id"  # one order: claimers keying at once never deadlock
    )
    names = [d[0] for d in rows.description][2:]
    out = []
    for row in rows.fetchall():
        call = dict(zip(names, row[2:]))
        out.append((int(row[0]), float(row[1]), call if call.get("call_id") else None))
    return out


def set_keys(db: Db, keys: Sequence[tuple[str, float, int]]) -> None:
    """Give jobs their contact and call end: ``(phone, call_end, job_id)``."""
    if keys:
        db.executemany("UPDATE jobs SET phone = ?, call_end = ? WHERE id = ?", keys)


def _skip_locked(db: Db) -> str:
    """PostgreSQL, several processes claiming at once: a job another claimer is taking is skipped, and
    a job this one locks is checked again as it is now (it may have been leased meanwhile).  SQLite
    has one writer at a time (BEGIN IMMEDIATE): nothing to add."""
    return " FOR UPDATE SKIP LOCKED" if db.dialect == POSTGRES else ""


def claim(db: Db, now: float, lease_seconds: float) -> dict[str, Any] | None:
    """Lease the job whose lease expired first (its worker died), else the most overdue one, that does
    not wait for another job of its contact; with its call's row under ``"call"`` (None if not stored)
    and ``"expired"`` (True when its previous worker died with it).  Keyed jobs only."""
    # Two statements, so each walks an index in order and stops at the first job that waits for nobody
    # (one OR-ed statement would sort every due job first).
    row = db.execute(
        f"SELECT id FROM jobs WHERE status = 'leased' AND lease_until < ? AND phone IS NOT NULL AND NOT {_WAITING} "
        f"ORDER BY id LIMIT 1{_skip_locked(db)}",
        (now, now),
    ).fetchone()
    expired = row is not None
    if row is None:
        row = db.execute(
            f"SELECT id FROM jobs WHERE status = 'pending' AND next_attempt_at <= ? AND phone IS NOT NULL "
            f"AND NOT {_WAITING} ORDER BY next_attempt_at, id LIMIT 1{_skip_locked(db)}",
            (now, now),
        ).fetchone()
    if row is None:
        return None
    job = one_dict(db.execute(
        "UPDATE jobs SET status = 'leased', lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? "
        "RETURNING *",
        (now + lease_seconds, now, row[0]),
    ))
    assert job is not None
    job["call"] = one_dict(db.execute("SELECT * FROM calls WHERE source = ? AND call_id = ?",
                                      (job["source"], job["call_id"])))
    job["expired"] = expired
    return job


def next_due(db: Db, now: float) -> float | None:
    """When a job may next be claimable: the earliest due time of a job that waits for nobody, or the
    earliest lease expiry (None when nothing is open).  Read-only."""
    pending = db.execute(
        f"SELECT next_attempt_at FROM jobs WHERE status = 'pending' AND kind = 'crm' AND NOT {_WAITING} "
        "ORDER BY next_attempt_at, id LIMIT 1",
        (now,),
    ).fetchone()
    leased = db.execute("SELECT MIN(lease_until) FROM jobs WHERE status = 'leased' AND kind = 'crm'").fetchone()
    times = [t for t in (pending[0] if pending else None, leased[0]) if t is not None]
    return min(times) if times else None


# -- a job's progress ----------------------------------------------------------------------


def steps(db: Db, job_id: int) -> dict[str, tuple[str, Any]]:
    return {
        step: (state, json.loads(result) if result else None)
        for step, state, result in db.execute("SELECT step, state, result FROM job_steps WHERE job_id = ?", (job_id,))
    }


def set_step(db: Db, job_id: int, step: str, state: str, result: Any, at: float) -> None:
    db.execute(
        "INSERT INTO job_steps (job_id, step, state, result, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (job_id, step) DO UPDATE SET state = excluded.state, result = excluded.result, at = excluded.at",
        (job_id, step, state, json.dumps(result), at),
    )


def record_attempts(db: Db, rows: Sequence[tuple[Any, ...]]) -> None:
    """Delivery log rows: (job_id, at, kind, method, path, status, response, trace_id, duration_ms, error)."""
    if rows:
        db.execute(
            "INSERT INTO attempts (job_id, at, kind, method, path, status, response, trace_id, duration_ms, error) "
            f"VALUES {values_rows(len(rows), 10)}",
            [v for r in rows for v in r],
        )


def complete(db: Db, job_id: int, now: float) -> None:
    db.execute(
        "UPDATE jobs SET status = 'done', done_at = ?, lease_until = NULL, last_error = NULL, updated_at = ? WHERE id = ?",
        (now, now, job_id),
    )
    stats.bump(db, "processed", now)


def retry_later(db: Db, job_id: int, at: float, error: str, now: float, *, failure: bool) -> None:
    db.execute(
        "UPDATE jobs SET status = 'pending', next_attempt_at = ?, lease_until = NULL, last_error = ?, "
        "failures = failures + ?, updated_at = ? WHERE id = ?",
        (at, error, 1 if failure else 0, now, job_id),
    )
    if failure:
        stats.bump(db, "sync_failed", now)


def kill(db: Db, job_id: int, error: str, now: float) -> None:
    db.execute(
        "UPDATE jobs SET status = 'dead', lease_until = NULL, last_error = ?, failures = failures + 1, "
        "updated_at = ? WHERE id = ?",
        (error, now, job_id),
    )
    stats.add(db, {(stats.hour_of(now), "sync_failed"): 1, (stats.hour_of(now), "dead"): 1})


def _selection(source: str | None, call_id: str | None, since: float | None, until: float | None,
               time_column: str) -> tuple[list[str], list[Any]]:
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


def replay(db: Db, now: float, *, dead: bool = False, source: str | None = None, call_id: str | None = None,
           since: float | None = None, until: float | None = None, job_ids: list[int] | None = None) -> int:
    """Re-queue jobs; finished calls in a time range that never had a job get one.

    Dead jobs keep the steps they finished.  Replaying a job that was done re-applies tags and fields,
    and re-checks (not blindly re-posts) its note and task; a callback counter is never counted twice.
    """
    where, args = _selection(source, call_id, since, until, "created_at")
    if dead:
        where.append("status = 'dead'")
    if job_ids is not None:
        where.append(f"id IN ({marks(len(job_ids))})" if job_ids else "FALSE")
        args += job_ids
    if not where:
        raise ValueError("replay needs --dead, --call or --since")
    created = 0
    if not dead and job_ids is None:
        call_where, call_args = _selection(source, call_id, since, until, "updated_at")
        created = db.execute(
            "INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at) "
            f"SELECT source, call_id, 'pending', 0, 0, ?, updated_at, ? FROM calls WHERE {' AND '.join(call_where)} "
            "AND outcome IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.source = calls.source AND j.call_id = calls.call_id)",
            [now, now, *call_args],
        ).rowcount
    ids = [r[0] for r in db.execute(f"SELECT id FROM jobs WHERE status != 'leased' AND {' AND '.join(where)}", args)]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        db.execute(f"DELETE FROM job_steps WHERE job_id IN ({marks(len(chunk))}) "
                   f"AND step NOT IN ({marks(len(KEPT_STEPS))})", [*chunk, *KEPT_STEPS])
        db.execute(
            f"UPDATE job_steps SET state = 'started' WHERE job_id IN ({marks(len(chunk))}) "
            f"AND step IN ({marks(len(CHECKED_STEPS))}) AND state = 'done' "
            "AND (SELECT status FROM jobs WHERE id = job_steps.job_id) = 'done'",
            [*chunk, *CHECKED_STEPS],
        )
        db.execute(
            "UPDATE jobs SET status = 'pending', failures = 0, next_attempt_at = ?, last_error = NULL, "
            f"done_at = NULL, updated_at = ? WHERE id IN ({marks(len(chunk))})",
            [now, now, *chunk],
        )
    return len(ids) + created


def discard(db: Db, job_ids: list[int], now: float) -> int:
    if not job_ids:
        return 0
    return db.execute(
        f"UPDATE jobs SET status = 'discarded', updated_at = ? WHERE status = 'dead' AND id IN ({marks(len(job_ids))})",
        (now, *job_ids),
    ).rowcount


# -- reads ---------------------------------------------------------------------------------


def sync_metrics(db: Db, now: float, latency_sample: int = 2000) -> dict[str, Any]:
    # Only the statuses shown: counting 'done' would scan every job ever synced (50 ms at 360k jobs).
    by_status = {s: int(n) for s, n in db.execute(
        "SELECT status, COUNT(*) FROM jobs WHERE status IN ('pending', 'leased', 'dead') GROUP BY status")}
    oldest = db.execute(f"SELECT MIN(created_at) FROM jobs WHERE {OPEN}").fetchone()[0]
    retrying = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND failures > 0").fetchone()[0]
    latencies = sorted(r[0] * 1000 for r in db.execute(
        "SELECT done_at - created_at FROM jobs WHERE status = 'done' AND kind = 'crm' ORDER BY done_at DESC LIMIT ?", (latency_sample,)))
    totals = {name: int(n) for name, n in db.execute(
        "SELECT name, SUM(n) FROM stats_hourly WHERE name IN ('processed', 'sync_failed', 'dead', 'http_429') "
        "GROUP BY name")}
    return {
        "processed": totals.get("processed", 0),
        "failed": totals.get("sync_failed", 0),
        "dead": by_status.get("dead", 0),
        "pending": by_status.get("pending", 0) + by_status.get("leased", 0),
        "retrying": int(retrying),
        "oldest_pending_age_seconds": round(now - oldest, 1) if oldest else 0,
        "sync_latency_ms": {"count": len(latencies), "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "http_429": totals.get("http_429", 0),
    }


def latency_by_minute(db: Db, since: float) -> list[dict[str, Any]]:
    """P50/P95 receipt -> CRM latency per minute, for the dashboard chart."""
    minutes: dict[int, list[float]] = {}
    for done_at, seconds in db.execute(
        "SELECT done_at, done_at - created_at FROM jobs WHERE status = 'done' AND done_at >= ? AND kind = 'crm'", (since,)
    ):
        minutes.setdefault(int(done_at // 60 * 60), []).append(seconds * 1000)
    return [{"minute": m, "p50": percentile(sorted(v), 50), "p95": percentile(sorted(v), 95)}
            for m, v in sorted(minutes.items())]


def list_dead(db: Db, limit: int = 200) -> list[dict[str, Any]]:
    return dicts(db.execute(
        "SELECT j.id, j.source, j.call_id, j.attempts, j.failures, j.last_error, j.updated_at, j.created_at, "
        "c.phone, c.outcome FROM jobs j LEFT JOIN calls c ON c.source = j.source AND c.call_id = j.call_id "
        "WHERE j.status = 'dead' ORDER BY j.updated_at DESC LIMIT ?",
        (max(1, min(int(limit), PAGE_MAX)),),
    ))


def job_for_call(db: Db, source: str, call_id: str) -> dict[str, Any] | None:
    job = one_dict(db.execute("SELECT * FROM jobs WHERE source = ? AND call_id = ?", (source, call_id)))
    if job is None:
        return None
    job["steps"] = dicts(db.execute(
        "SELECT step, state, result FROM job_steps WHERE job_id = ? ORDER BY at", (job["id"],)))
    job["waiting_for"] = waiting_for(db, job)
    return job


def waiting_for(db: Db, job: dict[str, Any]) -> str | None:
    """``source/call_id`` of the call an open job waits for: an earlier call of the same contact still
    to sync, or one of its calls being synced now (a contact's calls are written in the order they
    ended); None when it waits for nothing."""
    if job["status"] not in ("pending", "leased") or not job.get("phone"):
        return None
    row = db.execute(
        f"SELECT source, call_id FROM jobs WHERE phone = ? AND {OPEN} AND id != ? "
        "AND (call_end < ? OR (call_end = ? AND id < ?) OR status = 'leased') ORDER BY call_end, id LIMIT 1",
        (job["phone"], job["id"], job["call_end"], job["call_end"], job["id"]),
    ).fetchone()
    return f"{row[0]}/{row[1]}" if row else None


def delivery_log(db: Db, source: str, call_id: str) -> list[dict[str, Any]]:
    return dicts(db.execute(
        "SELECT a.at, a.kind, a.method, a.path, a.status, a.response, a.trace_id, a.duration_ms, a.error "
        "FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.source = ? AND j.call_id = ? ORDER BY a.id",
        (source, call_id),
    ))


def failed_calls(db: Db) -> int:
    """Calls whose CRM write failed at least once (retried, dead or synced later): calls, not tries."""
    return int(db.execute("SELECT COUNT(*) FROM jobs WHERE failures > 0 AND kind = 'crm'").fetchone()[0])


def dead_ids(db: Db) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = 'dead' ORDER BY id")]


def states(db: Db, job_ids: list[int]) -> dict[str, int]:
    """How many of these jobs are in each status."""
    counts: dict[str, int] = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        for status, n in db.execute(
            f"SELECT status, COUNT(*) FROM jobs WHERE id IN ({marks(len(chunk))}) GROUP BY status", chunk
        ):
            counts[status] = counts.get(status, 0) + int(n)
    return counts
