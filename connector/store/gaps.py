"""The heartbeat, reconciliation state and reconciled calls (migration 8): plain SQL on a :class:`Db`,
the same on SQLite and PostgreSQL.  Writes run through the store writer (``writer.execute``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.store.db import Db, dicts, marks, one_dict


# -- heartbeat: one row per stretch callsync was receiving --------------------------------
def begin_stretch(db: Db, at: float) -> None:
    db.execute("INSERT INTO heartbeat (started_at, last_beat) VALUES (?, ?) ON CONFLICT (started_at) DO NOTHING",
               (at, at))


def beat(db: Db, started_at: float, at: float) -> None:
    db.execute("UPDATE heartbeat SET last_beat = ? WHERE started_at = ? AND last_beat < ?", (at, started_at, at))


def stretches(db: Db, since: float) -> list[tuple[float, float]]:
    """``(started_at, last_beat)`` of every stretch that ended after ``since``, oldest first."""
    return [(float(a), float(b)) for a, b in db.execute(
        "SELECT started_at, last_beat FROM heartbeat WHERE last_beat >= ? ORDER BY started_at", (since,))]


def last_stretch_before(db: Db, at: float) -> tuple[float, float] | None:
    row = db.execute("SELECT started_at, last_beat FROM heartbeat WHERE started_at < ? ORDER BY started_at DESC "
                     "LIMIT 1", (at,)).fetchone()
    return (float(row[0]), float(row[1])) if row else None


# -- reconciliation state per source ----------------------------------------------------
def reconcile_state(db: Db, source: str) -> dict[str, Any] | None:
    return one_dict(db.execute("SELECT * FROM reconcile_state WHERE source = ?", (source,)))


def all_reconcile_states(db: Db) -> list[dict[str, Any]]:
    return dicts(db.execute("SELECT * FROM reconcile_state ORDER BY source"))


def save_run(db: Db, source: str, *, since: float | None, at: float, error: str | None) -> None:
    """A run ended: where the next one starts (unchanged after a failure), and how it went."""
    db.execute(
        "INSERT INTO reconcile_state (source, since, last_run, last_ok, last_error) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (source) DO UPDATE SET since = COALESCE(excluded.since, reconcile_state.since), "
        "last_run = excluded.last_run, last_ok = COALESCE(excluded.last_ok, reconcile_state.last_ok), "
        "last_error = excluded.last_error",
        (source, since, at, None if error else at, error))


# -- calls reconciliation filled in or completed ------------------------------------------
def record_reconciled(db: Db, source: str, call_id: str, kind: str, call_start: float | None, at: float) -> None:
    db.execute("INSERT INTO reconciled (source, call_id, kind, call_start, at) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT (source, call_id) DO NOTHING", (source, call_id, kind, call_start, at))


def reconciled_between(db: Db, start: float, end: float) -> list[tuple[str, str, float]]:
    """``(source, kind, call_start)`` of the calls reconciled that started in ``[start, end]``."""
    return [(s, k, float(t)) for s, k, t in db.execute(
        "SELECT source, kind, call_start FROM reconciled WHERE call_start >= ? AND call_start <= ?", (start, end))]


# -- what reconciliation reads of the calls ----------------------------------------------
def call_statuses(db: Db, source: str, call_ids: Sequence[str]) -> dict[str, str | None]:
    """The stored status of each of these calls of ``source`` that the store holds."""
    found: dict[str, str | None] = {}
    for start in range(0, len(call_ids), 500):
        chunk = list(call_ids[start:start + 500])
        for call_id, status in db.execute(
                f"SELECT call_id, status FROM calls WHERE source = ? AND call_id IN ({marks(len(chunk))})",
                [source, *chunk]):
            found[call_id] = status
    return found


def open_calls(db: Db, source: str, limit: int = 200) -> list[dict[str, Any]]:
    """Calls of ``source`` without a final status (test calls left out), least recently updated first."""
    return dicts(db.execute(
        "SELECT call_id, status, last_event_at, updated_at FROM calls WHERE source = ? AND test = 0 AND "
        "(status IS NULL OR status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'voicemail')) "
        "ORDER BY updated_at LIMIT ?", (source, limit)))
