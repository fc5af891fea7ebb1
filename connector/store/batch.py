"""A batch of incoming events in one transaction: look up, ingest, write.

1. look up what the store holds for the batch: which dedupe keys are stored, the records of its
   calls and, for calls already stored, their events (``store.events``, ``store.calls``);
2. :func:`connector.ingest.ingest` (pure) decides what is new, each call's record and which calls
   are due for the CRM;
3. write the new events (ids come back with ``RETURNING``), the calls, the jobs and the counters.

A constant number of statements whatever the batch size (at most eight with BEGIN and COMMIT), so
a burst costs one commit.  Ack only after :func:`write` returned: the transaction is committed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from connector.ingest import Incoming, Ingested, Key, Known, ingest, lookups
from connector.store import calls, events, jobs, stats
from connector.store.db import POSTGRES, Db


def write(db: Db, items: Sequence[Incoming], counts: Counter[tuple[int, str]] | None = None) -> Ingested:
    """Store ``items`` (and add ``counts`` to the counters) in one transaction."""
    with db.transaction():
        keys, call_keys = lookups(items)
        _one_writer_per_key(db, keys, call_keys)
        known = Known(events.stored_keys(db, keys), calls.load(db, call_keys))
        for key, stored in events.of_calls(db, list(known.calls)).items():
            known.calls[key].events = stored
        done = ingest(items, known)
        ids = events.insert(db, [events.row(item, outcome) for item, outcome in done.events])
        for result, event_id in zip(done.new_results, ids):
            result.event_id = event_id
        calls.upsert(db, done.calls)
        jobs.queue(db, done.jobs)
        stats.add(db, done.counts + counts if counts else done.counts)
    return done


def _lock_id(kind: str, key: Key) -> int:
    digest = hashlib.blake2b(f"{kind}\0{key[0]}\0{key[1]}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _one_writer_per_key(db: Db, keys: Sequence[Key], call_keys: Sequence[Key]) -> None:
    """PostgreSQL, several writers (``serve --workers``): lock the batch's events and calls for this
    transaction, in one order, so no two processes store the same event or fold the same call at once
    (the second waits, then looks up what the first committed).  SQLite has one writer at a time."""
    if db.dialect == POSTGRES and (keys or call_keys):
        ids = sorted({_lock_id("event", k) for k in keys} | {_lock_id("call", k) for k in call_keys})
        db.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k", (ids,))


def write_counts(db: Db, counts: Counter[tuple[int, str]]) -> None:
    """Only counters, in their own transaction."""
    if counts:
        with db.transaction():
            stats.add(db, counts)
