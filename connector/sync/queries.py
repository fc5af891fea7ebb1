"""Read-side queries about CRM sync (run on reader connections)."""

from __future__ import annotations

import sqlite3
from typing import Any

from connector.metrics import percentile
from connector.store.reader import PAGE_MAX


def sync_metrics(conn: sqlite3.Connection, now: float, latency_sample: int = 2000) -> dict[str, Any]:
    # Only the statuses shown: counting 'done' would scan every job ever synced (50 ms at 360k jobs).
    by_status = dict(conn.execute(
        "SELECT status, COUNT(*) FROM jobs WHERE status IN ('pending', 'leased', 'dead') GROUP BY status"
    ).fetchall())
    oldest = conn.execute("SELECT MIN(created_at) FROM jobs WHERE status IN ('pending', 'leased')").fetchone()[0]
    retrying = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND failures > 0").fetchone()[0]
    latencies = sorted(
        (r[0] * 1000 for r in conn.execute(
            "SELECT done_at - created_at FROM jobs WHERE status = 'done' ORDER BY done_at DESC LIMIT ?",
            (latency_sample,),
        ))
    )
    totals = dict(conn.execute(
        "SELECT name, SUM(n) FROM stats_hourly WHERE name IN ('processed', 'sync_failed', 'dead', 'http_429') "
        "GROUP BY name"
    ).fetchall())
    return {
        "processed": totals.get("processed", 0),
        "failed": totals.get("sync_failed", 0),
        "dead": by_status.get("dead", 0),
        "pending": by_status.get("pending", 0) + by_status.get("leased", 0),
        "retrying": retrying,
        "oldest_pending_age_seconds": round(now - oldest, 1) if oldest else 0,
        "sync_latency_ms": {
            "count": len(latencies),
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
        },
        "http_429": totals.get("http_429", 0),
    }


def latency_by_minute(conn: sqlite3.Connection, since: float) -> list[dict[str, Any]]:
    """P50/P95 receipt -> CRM latency per minute, for the dashboard chart."""
    minutes: dict[int, list[float]] = {}
    for done_at, seconds in conn.execute(
        "SELECT done_at, done_at - created_at FROM jobs WHERE status = 'done' AND done_at >= ?", (since,)
    ):
        minutes.setdefault(int(done_at // 60 * 60), []).append(seconds * 1000)
    out = []
    for minute in sorted(minutes):
        values = sorted(minutes[minute])
        out.append({"minute": minute, "p50": percentile(values, 50), "p95": percentile(values, 95)})
    return out


def list_dead(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    limit = max(1, min(int(limit), PAGE_MAX))
    rows = conn.execute(
        "SELECT j.id, j.source, j.call_id, j.attempts, j.failures, j.last_error, j.updated_at, j.created_at, "
        "c.phone, c.outcome FROM jobs j LEFT JOIN calls c ON c.source = j.source AND c.call_id = j.call_id "
        "WHERE j.status = 'dead' ORDER BY j.updated_at DESC LIMIT ?",
        (limit,),
    )
    cols = [d[0] for d in rows.description]
    return [dict(zip(cols, r)) for r in rows]


def job_for_call(conn: sqlite3.Connection, source: str, call_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM jobs WHERE source = ? AND call_id = ?", (source, call_id)).fetchone()
    if row is None:
        return None
    cols = [d[0] for d in conn.execute("SELECT * FROM jobs LIMIT 0").description]
    job = dict(zip(cols, row))
    job["steps"] = [
        {"step": s, "state": st, "result": r}
        for s, st, r in conn.execute("SELECT step, state, result FROM job_steps WHERE job_id = ? ORDER BY at", (job["id"],))
    ]
    job["waiting_for"] = waiting_for(conn, job)
    return job


def waiting_for(conn: sqlite3.Connection, job: dict[str, Any]) -> str | None:
    """``source/call_id`` of the call an open job waits for: an earlier call of the same contact still
    to sync, or one of its calls being synced now (a contact's calls are written in the order they
    ended); None when it waits for nothing."""
    if job["status"] not in ("pending", "leased") or not job.get("phone"):
        return None
    row = conn.execute(
        "SELECT source, call_id FROM jobs WHERE phone = ? AND status IN ('pending', 'leased') AND id != ? "
        "AND (call_end < ? OR (call_end = ? AND id < ?) OR status = 'leased') ORDER BY call_end, id LIMIT 1",
        (job["phone"], job["id"], job["call_end"], job["call_end"], job["id"]),
    ).fetchone()
    return f"{row[0]}/{row[1]}" if row else None


def delivery_log(conn: sqlite3.Connection, source: str, call_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT a.at, a.kind, a.method, a.path, a.status, a.response, a.trace_id, a.duration_ms, a.error "
        "FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.source = ? AND j.call_id = ? ORDER BY a.id",
        (source, call_id),
    )
    cols = [d[0] for d in rows.description]
    return [dict(zip(cols, r)) for r in rows]
