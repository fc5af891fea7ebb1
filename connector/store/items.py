"""What travels through the store writer: the incoming event, what was done with it, counters.

Kept apart from :mod:`connector.store.writer` so the writer module holds only the thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from connector.calls import fold
from connector.model import CallEvent, CallRecord
from connector.store import ingest


@dataclass(slots=True)
class Incoming:
    """A verified, normalized event waiting to be stored."""

    source: str
    event: CallEvent
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # already redacted
    received_at: float = field(default_factory=time.time)
    # Set by prepare(): the event's row (all but id and outcome) as values and as JSON text
    # (None when it must travel hex-encoded), and, for a call event, its call's record and
    # row as they are when this is the call's first event.
    row: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)
    row_json: str | None = field(default=None, init=False, repr=False, compare=False)
    new_record: CallRecord | None = field(default=None, init=False, repr=False, compare=False)
    new_call: ingest.Row | None = field(default=None, init=False, repr=False, compare=False)

    def prepare(self) -> None:
        """Encode what does not depend on the store.  :meth:`StoreWriter.store` calls it on the
        caller's thread, so the writer thread - on the path of every acknowledgement - does not."""
        ev = self.event
        self.row = (
            self.source, ev.dedupe_key, self.received_at, ev.event_type, ev.call_id,
            1 if ev.is_call_event else 0, ev.status, ev.phone, ev.occurred_at, ev.sequence,
            self.content_type, json.dumps(self.headers), self.body, json.dumps(ev.to_dict(), default=str),
        )
        text = ingest.plain_json(self.row)
        self.row_json = None if text is None else text[1:]
        if ev.call_id:
            self.new_record = fold(None, self.source, ev)
            self.new_call = call_row(self.new_record, self.received_at, self.received_at)


def call_row(record: CallRecord, first_received_at: float, updated_at: float) -> ingest.Row:
    values = record.to_dict() | {"phone": record.phone, "first_received_at": first_received_at, "updated_at": updated_at}
    return ingest.Row([values.get(c) for c in ingest.CALL_COLUMNS])


@dataclass(slots=True)
class Stored:
    """What the writer did with one event (also what hooks receive)."""

    duplicate: bool
    event_id: int | None = None
    source: str = ""
    event: CallEvent | None = None
    before: CallRecord | None = None
    record: CallRecord | None = None
    received_at: float = 0.0


# A hook sees the new events of each batch (writer thread, before the write) and
# returns the outbox jobs to queue for them as ``(source, call_id, at)``: the sync
# outbox queues a job when a call reaches its outcome.  The jobs are written by the
# same statement as the events, so "event stored" and "work queued" commit
# together or not at all.
Hook = Callable[[list[Stored]], Iterable[tuple[str, str, float]]]


def hour_of(ts: float) -> int:
    return int(ts // 3600 * 3600)


def add_counts(conn: sqlite3.Connection, counts: dict[tuple[int, str], int]) -> None:
    """Add to per-hour counters (``(hour, name) -> n``) inside the current transaction."""
    if counts:
        conn.executemany(
            "INSERT INTO stats_hourly (hour, name, n) VALUES (?,?,?) "
            "ON CONFLICT(hour, name) DO UPDATE SET n = n + excluded.n",
            [(hour, name, n) for (hour, name), n in counts.items()],
        )
