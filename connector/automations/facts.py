"""What the recipes see of a newly stored event: a :class:`Fact`, built from the writer's result.

A fact is *finished* when its event gave the call its outcome (the call had none before): windows
count each call once, at that moment.  Test events never become facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.calls import instant
from connector.model import INITIATED, QUEUED, VOICEMAIL

_EPOCH_YEAR = 1971


@dataclass(slots=True)
class Fact:
    event_id: int
    source: str
    event_type: str
    at: float  # when the event happened: the sender's time, else when it was received (epoch seconds)
    call_id: str | None = None
    status: str | None = None  # the status this event implies
    finished: bool = False  # this event gave the call its outcome
    first_initiated: bool = False  # the call's first sign of being dialled (call.initiated and alike)
    first_machine: bool = False  # the call's first voicemail / answering-machine detection
    outcome: str | None = None  # the call's outcome after this event
    call_status: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    did: str | None = None  # the caller ID's DID id, else the from number
    campaign: str | None = None
    sip_code: int | None = None
    agent: str | None = None
    answered_by: str | None = None


def event_time(occurred_at: str | None, received_at: float) -> float:
    """The sender's time of the event when it has a readable one, else when it was received."""
    moment = instant(occurred_at)
    return moment.timestamp() if moment.year >= _EPOCH_YEAR else received_at


def machine(status: str | None, answered_by: str | None) -> bool:
    return status == VOICEMAIL or (answered_by or "").lower().startswith("machine")


def from_stored(stored: Any) -> Fact | None:
    """A fact from what the writer did with one event (``Stored``); None for duplicates and tests."""
    ev = stored.event
    if stored.duplicate or ev is None or stored.event_id is None or ev.test:
        return None
    record, before = stored.record, stored.before
    fact = Fact(int(stored.event_id), stored.source, ev.event_type, event_time(ev.occurred_at, stored.received_at),
                call_id=ev.call_id, status=ev.status, agent=ev.agent)
    if record is None:
        return fact
    if record.test:
        return None
    before_outcome = before.outcome if before is not None else None
    before_status = before.status if before is not None else None
    fact.finished = bool(record.outcome) and not before_outcome
    fact.first_initiated = ev.status == INITIATED and before_status in (None, QUEUED)
    fact.first_machine = machine(ev.status, ev.answered_by) and not (
        before is not None and machine(before.status, before.answered_by))
    fact.outcome, fact.call_status, fact.direction = record.outcome, record.status, record.direction
    fact.from_number, fact.to_number = record.from_number, record.to_number
    fact.did = record.did or record.from_number
    fact.campaign, fact.sip_code = record.campaign, record.sip_code
    fact.agent, fact.answered_by = record.agent or ev.agent, record.answered_by
    return fact


def from_call_row(row: dict[str, Any], event_id: int) -> Fact:
    """A finished call as the store holds it (rebuilding windows at start-up)."""
    return Fact(
        event_id, row.get("source") or "", "call", float(row.get("updated_at") or 0.0), call_id=row.get("call_id"),
        status=row.get("status"), finished=True, outcome=row.get("outcome"), call_status=row.get("status"),
        direction=row.get("direction"), from_number=row.get("from_number"), to_number=row.get("to_number"),
        did=row.get("did") or row.get("from_number"), campaign=row.get("campaign"), sip_code=row.get("sip_code"),
        agent=row.get("agent"), answered_by=row.get("answered_by"),
    )
