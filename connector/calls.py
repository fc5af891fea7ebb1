"""Fold the events of one call into a :class:`CallRecord` and derive its outcome.

Pure functions: no I/O.  Events may arrive in any order and more than once.

Merge rules used by :func:`fold`:

* Status is a join: a terminal status always beats a non-terminal one; among
  non-terminal statuses the higher ``STATUS_RANK`` wins; between two terminal
  statuses the more specific one wins, by ``TERMINAL_PRECEDENCE`` (voicemail >
  busy > no-answer > failed > canceled > completed).  Sequence numbers are not
  used here: a record does not remember which event set its status, so a
  sequence rule could not give the same result for every arrival order, and a
  sender reports at most one terminal status per call in practice.
* Scalar fields: an event newer than everything folded so far (higher
  ``sequence`` when both have one, else later ``occurred_at``) overwrites them;
  an older event only fills blanks; between events that cannot be ordered, a
  fixed value order decides.  ``None`` never overwrites a value.
* ``ring_seconds`` is recomputed from ``initiated_at``/``answered_at`` when both
  are known, otherwise taken from the events.
* ``test``: a call is a test call if any of its events is a test event.
* Outcome: a disposition callsync knows decides it, then an outcome the sender declared
  (``sender_outcome``), then AMD, the terminal status and whether the call was answered.

The result does not depend on arrival order unless two *older* events disagree
on a field the newest event does not carry; :func:`fold_events` sorts events
first and is exact in every case.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from functools import reduce
from typing import Iterable

from connector.model import (
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    NO_ANSWER,
    OUTCOME_ABANDONED,
    OUTCOME_BUSY,
    OUTCOME_CANCELED,
    OUTCOME_CONNECTED,
    OUTCOME_FAILED,
    OUTCOME_NO_ANSWER,
    OUTCOME_SALE,
    OUTCOME_VOICEMAIL,
    OUTCOMES,
    STATUS_RANK,
    TERMINAL_STATUSES,
    VOICEMAIL,
    CallEvent,
    CallRecord,
)

TERMINAL_PRECEDENCE = (VOICEMAIL, BUSY, NO_ANSWER, FAILED, CANCELED, COMPLETED)

SCALAR_FIELDS = (
    "direction",
    "from_number",
    "to_number",
    "initiated_at",
    "answered_at",
    "ended_at",
    "talk_seconds",
    "ring_seconds",
    "disposition",
    "hangup_cause",
    "sip_code",
    "agent",
    "did",
    "campaign",
    "recording_url",
    "answered_by",
    "transcript",
    "transcript_url",
    "summary",
    "quality_score",
    "cost",
    "currency",
    "analysis",
    "sender_outcome",
)

# Disposition labels (compared case-insensitively, "-", "_" and spaces alike).
DISPOSITION_OUTCOMES = {
    "sale": OUTCOME_SALE,
    "sold": OUTCOME_SALE,
    "closed won": OUTCOME_SALE,
    "connected rpc": OUTCOME_CONNECTED,
    "connected": OUTCOME_CONNECTED,
    "answered": OUTCOME_CONNECTED,
    "human": OUTCOME_CONNECTED,
    "contact": OUTCOME_CONNECTED,
    "ni": OUTCOME_CONNECTED,
    "dnc": OUTCOME_CONNECTED,
    "callbk": OUTCOME_CONNECTED,
    "na": OUTCOME_NO_ANSWER,
    "noanswer": OUTCOME_NO_ANSWER,
    "no answer": OUTCOME_NO_ANSWER,
    "b": OUTCOME_BUSY,
    "busy": OUTCOME_BUSY,
    "aa": OUTCOME_VOICEMAIL,
    "am": OUTCOME_VOICEMAIL,
    "vm": OUTCOME_VOICEMAIL,
    "voicemail": OUTCOME_VOICEMAIL,
    "answering machine": OUTCOME_VOICEMAIL,
    "drop": OUTCOME_ABANDONED,
    "abandon": OUTCOME_ABANDONED,
    "abandoned": OUTCOME_ABANDONED,
}

STATUS_OUTCOMES = {
    VOICEMAIL: OUTCOME_VOICEMAIL,
    BUSY: OUTCOME_BUSY,
    NO_ANSWER: OUTCOME_NO_ANSWER,
    FAILED: OUTCOME_FAILED,
}


def disposition_key(label: str) -> str:
    """Lower-case a disposition label and treat "-", "_" and runs of spaces alike."""
    return re.sub(r"[\s_\-]+", " ", label.strip().lower())


def outcome_for_disposition(label: str | None) -> str | None:
    """The outcome a disposition label stands for, or ``None`` when unknown."""
    return DISPOSITION_OUTCOMES.get(disposition_key(label)) if label else None


def merge_status(current: str | None, new: str | None) -> str | None:
    """The status a call has after seeing both; commutative and idempotent."""
    if new is None or current is None:
        return current if new is None else new
    return max(current, new, key=_status_weight)


def fold(record: CallRecord | None, source: str, event: CallEvent) -> CallRecord:
    """Return ``record`` updated with ``event`` (a new record when ``record`` is None)."""
    if not event.is_call_event or not event.call_id:
        raise ValueError(f"cannot fold a non-call event ({event.event_type})")
    if record is None:
        record = CallRecord(source=source, call_id=event.call_id)
    elif (record.source, record.call_id) != (source, event.call_id):
        raise ValueError(f"event for {source}/{event.call_id} folded into {record.source}/{record.call_id}")
    else:
        record = replace(record)
    order = _order(event, record)
    for name in SCALAR_FIELDS:
        new = getattr(event, name)
        old = getattr(record, name)
        if new is None or new == old:
            continue
        if old is None or order > 0:
            setattr(record, name, new)
        elif order == 0:
            setattr(record, name, max(old, new, key=_value_order))
    record.status = merge_status(record.status, event.status)
    record.event_count += 1
    record.test = bool(record.test or event.test)
    if event.sequence is not None:
        record.last_sequence = max(event.sequence, record.last_sequence if record.last_sequence is not None else -1)
    if event.occurred_at is not None:
        record.last_event_at = max(event.occurred_at, record.last_event_at or event.occurred_at, key=_time_order)
    ring = seconds_between(record.initiated_at, record.answered_at)
    if ring is not None:
        record.ring_seconds = ring
    record.outcome = derive_outcome(record)
    return record


def fold_events(source: str, events: Iterable[CallEvent]) -> CallRecord:
    """Fold all events of one call, oldest first; exact for every arrival order."""
    ordered = sorted(events, key=_event_sort_key)
    if not ordered:
        raise ValueError("no events to fold")
    return reduce(lambda record, event: fold(record, source, event), ordered, None)


def derive_outcome(record: CallRecord) -> str | None:
    """The business outcome of a finished call; ``None`` while the call is not terminal."""
    if record.status not in TERMINAL_STATUSES:
        return None
    by_disposition = outcome_for_disposition(record.disposition)
    if by_disposition:
        return by_disposition
    if record.sender_outcome in OUTCOMES:
        return record.sender_outcome
    if (record.answered_by or "").lower().startswith("machine"):
        return OUTCOME_VOICEMAIL
    if record.status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[record.status]
    answered = bool(record.talk_seconds) or record.answered_at is not None
    if record.status == CANCELED:
        return OUTCOME_ABANDONED if record.direction == "inbound" and not answered else OUTCOME_CANCELED
    return OUTCOME_CONNECTED if answered else OUTCOME_NO_ANSWER


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def instant(stamp: str | None) -> datetime:
    """Parse a normalized ISO timestamp; unparseable or missing ones sort first."""
    try:
        moment = datetime.fromisoformat(stamp) if stamp else _EPOCH
    except ValueError:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one normalized timestamp to a later one; ``None`` if unknown or negative."""
    if not start or not end:
        return None
    a, b = instant(start), instant(end)
    if a == _EPOCH or b == _EPOCH or b < a:
        return None
    return (b - a).total_seconds()


def _status_weight(status: str) -> tuple[int, int, str]:
    if status in TERMINAL_STATUSES:
        return (1, len(TERMINAL_PRECEDENCE) - TERMINAL_PRECEDENCE.index(status), status)
    return (0, STATUS_RANK.get(status, -1), status)


def _order(event: CallEvent, record: CallRecord) -> int:
    """1 if the event is newer than all folded so far, -1 if older, 0 if it cannot be told."""
    if record.event_count == 0:
        return 1
    if event.sequence is not None and record.last_sequence is not None and event.sequence != record.last_sequence:
        return 1 if event.sequence > record.last_sequence else -1
    if event.occurred_at and record.last_event_at:
        new, last = instant(event.occurred_at), instant(record.last_event_at)
        if new != last:
            return 1 if new > last else -1
    return 0


def _value_order(value: object) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def _time_order(stamp: str) -> tuple[datetime, str]:
    return (instant(stamp), stamp)


def _event_sort_key(event: CallEvent) -> tuple[int, datetime, str, str]:
    sequence = event.sequence if event.sequence is not None else -1
    return (sequence, instant(event.occurred_at), event.dedupe_key, repr(event.to_dict()))
