"""What the store knows about CRM contacts: the contact cache (phone -> contact id, its tags and fields
as last read), callback counters (the source of truth), the newest call applied to each contact
(``contact_applied``: an older call is stale) and the worker's own state (``worker_state``).

Every write runs inside the writer's transaction.
"""

from __future__ import annotations

import json
from typing import Any

from connector.store.db import Db


def cached(db: Db, phone: str) -> dict[str, Any] | None:
    """The cached contact of a phone: ``{"id", "tags", "fields", "checked_at"}``, or None."""
    row = db.execute(
        "SELECT contact_id, tags_json, fields_json, checked_at FROM contacts WHERE phone = ?", (phone,)
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "tags": json.loads(row[1] or "[]"), "fields": json.loads(row[2] or "{}"), "checked_at": row[3]}


def cache(db: Db, phone: str, contact: dict[str, Any], at: float) -> None:
    """Cache a contact as the CRM returned it (``id``, ``tags``, ``customFields``)."""
    fields = {f.get("id"): f.get("value", f.get("field_value")) for f in contact.get("customFields") or []}
    db.execute(
        "INSERT INTO contacts (phone, contact_id, tags_json, fields_json, checked_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (phone) DO UPDATE SET contact_id = excluded.contact_id, tags_json = excluded.tags_json, "
        "fields_json = excluded.fields_json, checked_at = excluded.checked_at",
        (phone, contact["id"], json.dumps(contact.get("tags") or []), json.dumps(fields), at),
    )


def update_cache(db: Db, phone: str, tags: list[str] | None = None, fields: dict[str, Any] | None = None) -> None:
    if tags is not None:
        db.execute("UPDATE contacts SET tags_json = ? WHERE phone = ?", (json.dumps(tags), phone))
    if fields is not None:
        db.execute("UPDATE contacts SET fields_json = ? WHERE phone = ?", (json.dumps(fields), phone))


def distrust(db: Db, phone: str | None) -> None:
    """After a write whose result is unknown: re-read the contact before the next diff."""
    db.execute("UPDATE contacts SET checked_at = NULL WHERE phone = ?", (phone,))


def counter(db: Db, phone: str) -> int | None:
    """The contact's callback counter, None when it has none."""
    row = db.execute("SELECT count FROM callback_counters WHERE phone = ?", (phone,)).fetchone()
    return int(row[0]) if row else None


def set_counter(db: Db, phone: str, count: int, at: float) -> None:
    db.execute(
        "INSERT INTO callback_counters (phone, count, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (phone) DO UPDATE SET count = excluded.count, updated_at = excluded.updated_at",
        (phone, count, at),
    )


def take_turn(db: Db, phone: str, end: float, job_id: int, at: float) -> int | None:
    """Record this job's call as the newest applied to the contact and return None; or, when a call
    that ended later was applied already, return that call's job id (this job is stale: it may only
    add its note and task)."""
    row = db.execute("SELECT call_end, job_id FROM contact_applied WHERE phone = ?", (phone,)).fetchone()
    if row is not None and (row[0], row[1]) > (end, job_id):
        return int(row[1])
    db.execute(
        "INSERT INTO contact_applied (phone, call_end, job_id, at) VALUES (?, ?, ?, ?) ON CONFLICT (phone) DO UPDATE "
        "SET call_end = excluded.call_end, job_id = excluded.job_id, at = excluded.at",
        (phone, end, job_id, at),
    )
    return None


def set_state(db: Db, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO worker_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )
