"""The outbox's rules over the store's ``jobs`` (:mod:`connector.store.jobs` holds the SQL).

Which calls are due for the CRM is decided at ingest (:func:`connector.ingest.due_for_crm`); here:
each job's contact (E.164 phone) and its call's end time, which order a contact's jobs (filled in
before a claim), and what a claim implies.  Functions taking a ``db`` run inside the writer's
transaction.
"""

from __future__ import annotations

from typing import Any

from connector.calls import instant
from connector.model import CallRecord
from connector.store import contacts, jobs
from connector.store.db import Db
from connector.sync.rules import PlanError, to_e164


def call_end(call: dict[str, Any] | None, received_at: float) -> float:
    """When the call ended (epoch seconds): its end time, else its last event, else when it was received."""
    for name in ("ended_at", "last_event_at", "answered_at", "initiated_at"):
        moment = instant((call or {}).get(name))
        if moment > instant(None):  # unparseable or missing: the epoch
            return moment.timestamp()
    return received_at


def contact_key(job_id: int, created_at: float, call: dict[str, Any] | None, region: str) -> tuple[str, float, int]:
    """``(phone, call_end, job_id)`` of a job: its contact and when its call ended.  A call without a
    usable number gets a phone of its own (``?<job id>``): it shares no contact and fails alone."""
    try:
        phone = to_e164(CallRecord.from_dict(call).phone, region) if call else None
    except PlanError:
        phone = None
    return phone or f"?{job_id}", call_end(call, created_at), job_id


def claim(db: Db, now: float, lease_seconds: float, region: str = "US") -> dict[str, Any] | None:
    """Key the open jobs not keyed yet, then claim one (:func:`connector.store.jobs.claim`).  A job
    taken again after its worker died may have died in the middle of a write: its contact is re-read."""
    jobs.set_keys(db, [contact_key(job_id, created_at, call, region) for job_id, created_at, call in jobs.unkeyed(db)])
    job = jobs.claim(db, now, lease_seconds)
    if job is not None and job["expired"]:
        contacts.distrust(db, job["phone"])
    return job


def count_callback(db: Db, job_id: int, phone: str, count: int, result: dict[str, Any], at: float) -> None:
    """Write the new counter value and mark the step done in one transaction: never counted twice."""
    contacts.set_counter(db, phone, count, at)
    jobs.set_step(db, job_id, "callback", "done", {"count": count} | result, at)
