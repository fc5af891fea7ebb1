"""What to do with the calls a provider's call log lists (pure; table-driven tests in tests/reconcile).

Per Twilio call, given what the store holds for its CallSid:

- still queued / ringing / in progress at Twilio: nothing yet (``waiting``; the next listing starts no
  later than the oldest of them);
- finished at Twilio, finished in the store too: the webhooks had it - nothing (``skipped``), so it is
  neither counted nor synced again;
- finished at Twilio, in the store but not finished (its last webhooks never came): ``complete`` it with
  one event of origin ``reconcile``;
- finished at Twilio, unknown to the store: ``fill`` it in - its record from that one event, which
  reaches the CRM exactly once like any finished call.  A child leg (``parent_call_sid``) is filled only
  when the store knows it: its webhooks belong to its parent call.

The event a step stores is the Twilio status callback the call would have sent last, read by the same
parser (:mod:`connector.formats.twilio`), with the dedupe key ``reconcile:<CallSid>``: one per call, so a
second run never stores it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from connector.formats import fields
from connector.formats import twilio as twilio_format
from connector.model import TERMINAL_STATUSES, CallEvent

TWILIO_FINISHED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
FILL, COMPLETE = "fill", "complete"
DEDUPE_PREFIX = "reconcile:"


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # fill | complete
    sid: str
    call: Mapping[str, Any]
    call_start: float | None


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    skipped: int = 0  # finished at Twilio and already finished here (by webhook)
    children: int = 0  # finished child legs the store never saw: not ours to fill
    waiting: list[str] = field(default_factory=list)  # not finished at Twilio yet
    oldest_waiting_start: float | None = None


def twilio_time(value: Any) -> float | None:
    """Twilio's RFC 2822 times (``Fri, 18 Oct 2019 17:00:00 +0000``) as Unix seconds."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.timestamp() if moment.tzinfo else None


def plan(calls: Iterable[Mapping[str, Any]], stored: Mapping[str, str | None], *, now: float | None = None,
         settle: float = 0.0) -> Plan:
    """``stored``: CallSid -> the store's status for that call (``None`` for a call without one yet);
    a CallSid missing from it is unknown to the store.  A call that ended less than ``settle`` seconds
    before ``now`` waits too: its last webhook is probably on its way."""
    result = Plan()
    seen: set[str] = set()
    for call in calls:
        sid = fields.text(call.get("sid"))
        status = (fields.text(call.get("status")) or "").lower()
        if not sid or sid in seen or not status:
            continue
        seen.add(sid)
        start = twilio_time(call.get("start_time"))
        end = twilio_time(call.get("end_time"))
        settling = now is not None and end is not None and now - end < settle
        if status not in TWILIO_FINISHED or (settling and stored.get(sid) not in TERMINAL_STATUSES):
            result.waiting.append(sid)
            if start is not None and (result.oldest_waiting_start is None or start < result.oldest_waiting_start):
                result.oldest_waiting_start = start
            continue
        if sid in stored:
            if stored[sid] in TERMINAL_STATUSES:
                result.skipped += 1
            else:
                result.steps.append(Step(COMPLETE, sid, call, start))
        elif fields.text(call.get("parent_call_sid")):
            result.children += 1
        else:
            result.steps.append(Step(FILL, sid, call, start))
    return result


def next_since(run_started: float, result: Plan, overlap: float) -> float:
    """Where the next listing starts: an overlap before this run, and never after a call still open."""
    since = run_started - overlap
    if result.oldest_waiting_start is not None:
        since = min(since, result.oldest_waiting_start)
    return since


def callback_form(call: Mapping[str, Any]) -> dict[str, str]:
    """The status callback Twilio would have sent last for this call, from its Call resource."""
    names = {"CallSid": "sid", "AccountSid": "account_sid", "CallStatus": "status", "From": "from", "To": "to",
             "Direction": "direction", "CallDuration": "duration", "AnsweredBy": "answered_by",
             "ParentCallSid": "parent_call_sid", "ApiVersion": "api_version", "start_time": "start_time",
             "end_time": "end_time", "Timestamp": "end_time"}
    form = {key: str(call[name]) for key, name in names.items() if call.get(name) not in (None, "")}
    if "Timestamp" not in form and call.get("start_time"):
        form["Timestamp"] = str(call["start_time"])
    form["CallbackSource"] = "reconcile"
    return form


def call_event(call: Mapping[str, Any]) -> tuple[CallEvent, bytes]:
    """The event a step stores, and the body kept as its raw payload (the Call resource, as JSON)."""
    body = json.dumps(dict(call), separators=(",", ":"), sort_keys=True).encode()
    delivery = fields.Delivery(DEDUPE_PREFIX + str(call["sid"]), "sha256:" + hashlib.sha256(body).hexdigest())
    return twilio_format.parse(callback_form(call), delivery), body


def is_incomplete(status: str | None, last_event_at: float | None, now: float, minutes: float) -> bool:
    """A call with no final event ``minutes`` after its last one (the sender's time, else receipt)."""
    return status not in TERMINAL_STATUSES and last_event_at is not None and now - last_event_at >= minutes * 60


def mark_incomplete(calls: list[dict[str, Any]], sources: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """Set ``incomplete`` on call rows (the window's Calls): no final event ``incomplete_minutes`` (per source,
    default 10) after the last one, by the sender's time, else the receipt time."""
    for row in calls:
        source = sources.get(row.get("source"))
        minutes = getattr(source, "incomplete_minutes", 10)
        last = fields.parse_time(row.get("last_event_at"))
        row["incomplete"] = is_incomplete(row.get("status"), last.timestamp() if last else row.get("updated_at"),
                                          now, minutes)
    return calls
