"""The ingest step, as a pure function: a batch of verified events and what the store already
holds for them in, what to write out.

For each incoming event, in order: is it a duplicate (its ``(source, dedupe_key)`` is stored
already, or came earlier in the same batch)?  If it is new and about a call, the call's record
after it: the call's stored events and this one folded again (:func:`connector.calls.fold_events`
gives the same record for any arrival order), or this event alone when the call is new.  A call
whose record just reached its outcome - and had none before, and is not a test call - is due for
the CRM.  Nothing here reads or writes the store: the writer looks up :class:`Known` with
``store.events`` / ``store.calls``, calls :func:`ingest`, and writes what it returns in the same
transaction (tests/unit/test_ingest.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from connector.calls import fold, fold_events
from connector.model import CallEvent, CallRecord

Key = tuple[str, str]  # (source, dedupe_key) of an event, or (source, call_id) of a call


@dataclass(slots=True)
class Incoming:
    """A verified, normalized event waiting to be stored."""

    source: str
    event: CallEvent
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # already redacted
    received_at: float = field(default_factory=time.time)
    origin: str = "webhook"  # webhook | reconcile (from the provider's call log)


@dataclass(slots=True)
class Stored:
    """What was done with one incoming event (the receiver answers with it)."""

    duplicate: bool
    event_id: int | None = None
    source: str = ""
    event: CallEvent | None = None
    before: CallRecord | None = None  # the call's record before this event (None: a new call)
    record: CallRecord | None = None  # ... and after it (None: not about a call)
    received_at: float = 0.0


@dataclass(slots=True)
class KnownCall:
    """A call the store holds: its record, when it was first received, its stored events."""

    record: CallRecord
    first_received_at: float
    events: list[CallEvent] = field(default_factory=list)


@dataclass(slots=True)
class Known:
    """What the store already holds for a batch (see :func:`lookups`)."""

    keys: set[Key] = field(default_factory=set)  # stored (source, dedupe_key) among the batch's
    calls: dict[Key, KnownCall] = field(default_factory=dict)  # stored calls among the batch's


@dataclass(slots=True)
class CallWrite:
    """A call's record as it is after the batch (one per call the batch touched)."""

    record: CallRecord
    first_received_at: float
    updated_at: float


@dataclass(slots=True)
class Ingested:
    """Everything one batch writes; ``results`` has one entry per incoming event, in order."""

    results: list[Stored]
    events: list[tuple[Incoming, str | None]]  # new events and their call's outcome after each
    calls: list[CallWrite]
    jobs: list[tuple[str, str, float]]  # (source, call_id, received_at) of calls due for the CRM
    counts: Counter[tuple[int, str]]  # (hour, name) -> n: "stored", "deduped"

    @property
    def new_results(self) -> list[Stored]:
        return [r for r in self.results if not r.duplicate]


def hour_of(ts: float) -> int:
    """The hour (epoch seconds) a per-hour counter of ``ts`` goes to."""
    return int(ts // 3600 * 3600)


def lookups(items: Iterable[Incoming]) -> tuple[list[Key], list[Key]]:
    """What to look up for a batch: its dedupe keys and its calls (each once, in first-seen order)."""
    keys = dict.fromkeys((i.source, i.event.dedupe_key) for i in items)
    calls = dict.fromkeys((i.source, i.event.call_id) for i in items if i.event.call_id)
    return list(keys), list(calls)  # type: ignore[arg-type]


def due_for_crm(before: CallRecord | None, after: CallRecord | None) -> bool:
    """The outbox rule: a call is synced once, when it first reaches an outcome (never a test call)."""
    return bool(after is not None and after.outcome and not after.test and (before is None or not before.outcome))


def ingest(items: Sequence[Incoming], known: Known) -> Ingested:
    """Decide, for a batch in queue order, what is new, each call's record, what is due for the CRM.
    The same result as ingesting the items one batch each (tests/unit/test_ingest.py)."""
    seen = set(known.keys)
    records: dict[Key, CallRecord] = {key: call.record for key, call in known.calls.items()}
    first_seen: dict[Key, float] = {key: call.first_received_at for key, call in known.calls.items()}
    history: dict[Key, list[CallEvent]] = {key: list(call.events) for key, call in known.calls.items()}
    touched: dict[Key, float] = {}  # call -> received_at of its last new event in the batch
    out = Ingested([], [], [], [], Counter())
    for item in items:
        ev = item.event
        hour = hour_of(item.received_at)
        key = (item.source, ev.dedupe_key)
        if key in seen:
            out.counts[(hour, "deduped")] += 1
            out.results.append(Stored(True, source=item.source, event=ev, received_at=item.received_at))
            continue
        seen.add(key)
        before = record = None
        if ev.call_id:
            call = (item.source, ev.call_id)
            before = records.get(call)
            past = history.setdefault(call, [])
            if past:
                record = fold_events(item.source, [*past, ev])
            else:  # the call's first event (or a stored call whose events are gone)
                record = fold(before, item.source, ev)
                first_seen.setdefault(call, item.received_at)
            past.append(ev)
            records[call] = record
            touched[call] = item.received_at
            if due_for_crm(before, record):
                out.jobs.append((item.source, ev.call_id, item.received_at))
        out.events.append((item, record.outcome if record else None))
        out.results.append(Stored(False, None, item.source, ev, before, record, item.received_at))
        out.counts[(hour, "stored")] += 1
    out.calls = [CallWrite(records[call], first_seen[call], at) for call, at in touched.items()]
    return out
