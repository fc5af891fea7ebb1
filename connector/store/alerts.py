"""Alerts, the automations' threshold state, and the outbox jobs that deliver alerts.

``alerts`` holds one row per crossing under its stable id; ``automation_state`` each threshold's
armed/tripped state and crossing count; ``worker_state`` the store's alert-id salt and the last event
the automations evaluated.  Alert jobs live in ``jobs`` with ``kind`` 'action' | 'notify' | 'webhook',
``source`` 'alert' and ``call_id`` '<alert id>/<sink>': queueing one twice is a no-op, and dead
letters, replay and the delivery log treat them like CRM jobs.  Writes run inside the writer's
transaction; reads anywhere.  The rebuild queries return at most each window's size per subject.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from connector.store import stats
from connector.store.db import SQLITE, Db, dicts, marks, one_dict, values_rows

ALERT_SOURCE = "alert"
ALERT_KINDS = ("action", "notify", "webhook")
SALT_KEY = "automations.salt"
MARK_KEY = "automations.mark"
CALL_COLUMNS = ("source, call_id, outcome, status, direction, from_number, to_number, did, campaign, sip_code, agent, "
                "answered_by, updated_at")
_DUE = "kind <> 'crm' AND status = 'pending' AND next_attempt_at <= ?"
REBUILD_CALLS = 200_000  # the newest finished calls the windows are rebuilt from at start-up


# -- the engine's own values ----------------------------------------------------------------


def _state(db: Db, key: str) -> str | None:
    row = db.execute("SELECT value FROM worker_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def _set_state(db: Db, key: str, value: Any) -> None:
    db.execute("INSERT INTO worker_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               (key, json.dumps(value)))


def salt(db: Db) -> str:
    """The store's salt for alert ids (made once): ids never repeat across stores."""
    value = _state(db, SALT_KEY)
    if not value:
        value = secrets.token_hex(8)
        _set_state(db, SALT_KEY, value)
    return str(value)


def mark(db: Db) -> int | None:
    value = _state(db, MARK_KEY)
    return None if value is None else int(value)


def set_mark(db: Db, event_id: int) -> None:
    _set_state(db, MARK_KEY, int(event_id))


def last_event_id(db: Db) -> int:
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def load_trips(db: Db) -> list[tuple[str, str, str, bool, int]]:
    return [(r, s, lv, bool(a), int(q)) for r, s, lv, a, q in
            db.execute("SELECT recipe, subject, level, armed, seq FROM automation_state")]


# -- writing alerts -------------------------------------------------------------------------


def save(db: Db, alerts: Sequence[dict[str, Any]], sinks: Sequence[Sequence[tuple[str, str]]],
         trips: Sequence[tuple[str, str, str, bool, int]], evaluated_through: int | None, now: float) -> list[str]:
    """Store alerts (an id already stored is left alone) and, for each new one, a job per sink
    (``sinks[i]``: ``(kind, name)`` pairs of ``alerts[i]``); save changed thresholds and the mark.
    Returns the ids that were new."""
    new: list[str] = []
    if alerts:
        columns = ("id", "recipe", "subject", "level", "created_at", "message", "fields_json", "evidence_json", "event_id")
        rows = [(a["id"], a["recipe"], a["subject"], a["level"], a["created_at"], a["message"],
                 json.dumps(a["fields"], default=str), json.dumps(a["evidence"], default=str), a.get("event_id"))
                for a in alerts]
        new = [r[0] for r in db.execute(
            f"INSERT INTO alerts ({', '.join(columns)}) VALUES {values_rows(len(rows), len(columns))} "
            "ON CONFLICT (id) DO NOTHING RETURNING id", [v for row in rows for v in row])]
        fresh = set(new)
        jobs = [(ALERT_SOURCE, f"{a['id']}/{kind}:{name}" if name else f"{a['id']}/{kind}", "pending", 0, 0, now, now,
                 now, kind) for a, pairs in zip(alerts, sinks) if a["id"] in fresh for kind, name in pairs]
        if jobs:
            db.execute(
                "INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at, "
                f"kind) VALUES {values_rows(len(jobs), 9)} ON CONFLICT (source, call_id) DO NOTHING",
                [v for job in jobs for v in job])
        if new:
            stats.bump(db, "alerts", now, len(new))
    if trips:
        db.execute(
            "INSERT INTO automation_state (recipe, subject, level, armed, seq, updated_at) VALUES "
            f"{values_rows(len(trips), 6)} ON CONFLICT (recipe, subject, level) DO UPDATE SET armed = excluded.armed, "
            "seq = excluded.seq, updated_at = excluded.updated_at",
            [v for r, s, lv, armed, seq in trips for v in (r, s, lv, 1 if armed else 0, seq, now)])
    if evaluated_through is not None:
        set_mark(db, evaluated_through)
    return new


def acknowledge(db: Db, alert_ids: Sequence[str], at: float) -> int:
    if not alert_ids:
        return 0
    return db.execute(f"UPDATE alerts SET acknowledged_at = ? WHERE acknowledged_at IS NULL AND id IN "
                      f"({marks(len(alert_ids))})", (at, *alert_ids)).rowcount


# -- reading alerts -------------------------------------------------------------------------


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    row["fields"] = json.loads(row.pop("fields_json") or "{}")
    row["evidence"] = json.loads(row.pop("evidence_json") or "{}")
    return row


def list_alerts(db: Db, since: float | None = None, limit: int = 100, recipe: str | None = None) -> list[dict[str, Any]]:
    """Newest first."""
    where, args = ["1 = 1"], []
    if since is not None:
        where.append("created_at >= ?")
        args.append(since)
    if recipe:
        where.append("recipe = ?")
        args.append(recipe)
    return [_alert(r) for r in dicts(db.execute(
        f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
        (*args, max(1, min(int(limit), 1000)))))]


def get_alert(db: Db, alert_id: str) -> dict[str, Any] | None:
    row = one_dict(db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)))
    if row is None:
        return None
    alert = _alert(row)
    alert["deliveries"] = dicts(db.execute(
        "SELECT id, kind, call_id, status, attempts, failures, last_error, updated_at, done_at FROM jobs "
        "WHERE source = ? AND call_id LIKE ? ESCAPE '!' ORDER BY id",
        (ALERT_SOURCE, alert_id.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "/%")))
    return alert


def unacknowledged(db: Db) -> int:
    return int(db.execute("SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NULL").fetchone()[0])


def callback_exhausted(db: Db, threshold: int, limit: int = 20) -> dict[str, Any]:
    """Contacts whose callback counter reached the CRM rules' threshold (the CRM moved them out of dialing)."""
    count = int(db.execute("SELECT COUNT(*) FROM callback_counters WHERE count >= ?", (threshold,)).fetchone()[0])
    recent = dicts(db.execute("SELECT phone, count, updated_at FROM callback_counters WHERE count >= ? "
                              "ORDER BY updated_at DESC LIMIT ?", (threshold, limit)))
    return {"count": count, "recent": recent}


# -- alert jobs -----------------------------------------------------------------------------


def claim(db: Db, now: float, lease_seconds: float) -> dict[str, Any] | None:
    """Lease the most overdue alert job (or one whose worker died), with its alert under ``"alert"``."""
    row = db.execute("SELECT id FROM jobs WHERE kind <> 'crm' AND status = 'leased' AND lease_until < ? ORDER BY id "
                     "LIMIT 1", (now,)).fetchone()
    if row is None:
        row = db.execute(f"SELECT id FROM jobs WHERE {_DUE} ORDER BY next_attempt_at, id LIMIT 1", (now,)).fetchone()
    if row is None:
        return None
    job = one_dict(db.execute("UPDATE jobs SET status = 'leased', lease_until = ?, attempts = attempts + 1, "
                              "updated_at = ? WHERE id = ? RETURNING *", (now + lease_seconds, now, row[0])))
    assert job is not None
    alert_id, _, sink = str(job["call_id"]).partition("/")
    job["sink"] = sink
    alert = one_dict(db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)))
    job["alert"] = None if alert is None else _alert(alert)
    return job


def release_leases(db: Db, now: float) -> int:
    """At start-up, on SQLite (one process per store, the data-dir lock): alert jobs still leased were taken
    by a process that died (kill -9) and are due again at once - the result of their last try is unknown,
    so the sink may see that alert again, under the same id.  On PostgreSQL a lease runs out instead."""
    if db.dialect != SQLITE:
        return 0
    return db.execute("UPDATE jobs SET status = 'pending', lease_until = NULL, next_attempt_at = ? "
                      "WHERE kind <> 'crm' AND status = 'leased'", (now,)).rowcount


def next_due(db: Db, now: float) -> float | None:
    pending = db.execute("SELECT MIN(next_attempt_at) FROM jobs WHERE kind <> 'crm' AND status = 'pending'").fetchone()
    leased = db.execute("SELECT MIN(lease_until) FROM jobs WHERE kind <> 'crm' AND status = 'leased'").fetchone()
    times = [t for t in (pending[0], leased[0]) if t is not None]
    return min(times) if times else None


def finish(db: Db, job_id: int, now: float, attempt: tuple[Any, ...] | None, *, outcome: str,
           retry_at: float | None = None, error: str | None = None) -> None:
    """Record one try (a delivery log row: at, kind, method, path, status, response, duration_ms, error) and
    the job's new state: ``outcome`` 'done', 'retry' (at ``retry_at``) or 'dead'."""
    if attempt is not None:
        db.execute("INSERT INTO attempts (job_id, at, kind, method, path, status, response, duration_ms, error) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (job_id, *attempt))
    if outcome == "done":
        db.execute("UPDATE jobs SET status = 'done', done_at = ?, lease_until = NULL, last_error = NULL, updated_at = ? "
                   "WHERE id = ?", (now, now, job_id))
        stats.bump(db, "alerts_delivered", now)
    elif outcome == "retry":
        db.execute("UPDATE jobs SET status = 'pending', next_attempt_at = ?, lease_until = NULL, last_error = ?, "
                   "failures = failures + 1, updated_at = ? WHERE id = ?", (retry_at, error, now, job_id))
        stats.bump(db, "alert_delivery_failed", now)
    else:
        db.execute("UPDATE jobs SET status = 'dead', lease_until = NULL, last_error = ?, failures = failures + 1, "
                   "updated_at = ? WHERE id = ?", (error, now, job_id))
        stats.add(db, {(stats.hour_of(now), "alert_delivery_failed"): 1, (stats.hour_of(now), "dead"): 1})


def delivery_counts(db: Db) -> dict[str, int]:
    return {status: int(n) for status, n in db.execute(
        "SELECT status, COUNT(*) FROM jobs WHERE kind <> 'crm' AND status IN ('pending', 'leased', 'dead') "
        "GROUP BY status")}


# -- rebuilding the windows at start-up -----------------------------------------------------


def recent_finished(db: Db, limit: int = REBUILD_CALLS) -> list[dict[str, Any]]:
    """The newest ``limit`` finished calls (not tests), with the id of the event that finished each, in the
    order they finished (oldest first).  Start-up pushes them through every window: a window keeps its
    subject's last calls, so the rebuild costs the same whatever the store's size (``calls_updated``
    index, newest first)."""
    rows = dicts(db.execute(
        f"SELECT {CALL_COLUMNS}, (SELECT MIN(e.id) FROM events e WHERE e.source = calls.source "
        "AND e.call_id = calls.call_id AND e.outcome IS NOT NULL) AS event_id FROM calls "
        "WHERE outcome IS NOT NULL AND test = 0 ORDER BY updated_at DESC LIMIT ?", (limit,)))
    rows.sort(key=lambda r: (r["event_id"] is None, r["event_id"] or 0, r["updated_at"] or 0))
    return rows


def agent_events(db: Db, since: float) -> list[dict[str, Any]]:
    """Agent events received since ``since``, oldest first."""
    return dicts(db.execute(
        "SELECT id, source, event_type, received_at, event_json FROM events WHERE received_at >= ? AND is_call = 0 "
        "AND event_type LIKE 'agent.%' ORDER BY id", (since,)))


def events_after(db: Db, event_id: int, since: float, limit: int) -> list[dict[str, Any]]:
    """Call events stored after ``event_id`` (and received since ``since``), with their call's row, oldest first."""
    return dicts(db.execute(
        "SELECT e.id, e.source, e.event_type, e.received_at, e.event_json, c.outcome AS call_outcome, "
        "c.status AS call_status, c.direction AS call_direction, c.from_number AS call_from, c.to_number AS call_to, "
        "c.did AS call_did, c.campaign AS call_campaign, c.agent AS call_agent, c.test AS call_test "
        "FROM events e LEFT JOIN calls c ON c.source = e.source AND c.call_id = e.call_id "
        "WHERE e.id > ? AND e.received_at >= ? AND e.is_call = 1 ORDER BY e.id LIMIT ?", (event_id, since, limit)))
