"""The one thread that owns the SQLite write connection.

Request handlers hand it an event and await the returned future; the thread
drains everything queued (up to ``batch_max``), writes the events of the batch
with one committed statement (:mod:`connector.store.ingest`; WAL,
``synchronous=FULL``) and only then resolves the futures: a 2xx is never sent
for an event that is not on disk (group commit).  Functions queued with
:meth:`StoreWriter.execute` run in one ``BEGIN IMMEDIATE ... COMMIT`` per run of
them.  If a write fails, its items are written again one at a time, so one bad
item fails alone while the rest of its batch commits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connector.calls import fold, fold_events
from connector.model import CallEvent, CallRecord
from connector.store import ingest, schema

log = logging.getLogger(__name__)
T = TypeVar("T")

class _ItemFailed(Exception):
    """An item failed in a transaction written without savepoints."""


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
            self.new_call = _call_row(self.new_record, self.received_at, self.received_at)


def _call_row(record: CallRecord, first_received_at: float, updated_at: float) -> ingest.Row:
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


def open_write_connection(path: str) -> sqlite3.Connection:
    """The writer's connection: pragmas, schema brought up to date, ingest view and trigger."""
    conn = schema.connect(path)
    conn.row_factory = sqlite3.Row
    schema.migrate(conn)
    ingest.prepare(conn)
    return conn


class StoreWriter:
    def __init__(self, path: str, *, batch_max: int = 256, hooks: Iterable[Hook] = ()) -> None:
        self.path = str(path)
        self.batch_max = batch_max
        self.hooks: list[Hook] = list(hooks)
        self.after_commit: list[Callable[[], None]] = []  # run on the writer thread after each commit
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.batches = 0
        self.items = 0
        self.fallbacks = 0  # batches written again item by item because one item failed

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread and self._thread.is_alive():
            self._queue.put(("stop",))
            self._thread.join(timeout)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- API used from the event loop -----------------------------------
    def store(self, item: Incoming) -> asyncio.Future[Stored]:
        """Queue one event; the future resolves after its transaction committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Stored] = loop.create_future()
        item.prepare()
        self._queue.put(("event", item, loop, fut))
        return fut

    def execute(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn(conn)`` on the writer thread inside a committed transaction."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(("call", fn, loop, fut))
        return fut

    def execute_sync(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        """Blocking variant for threads without an event loop (CLI, tests)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def resolve(ok: bool, value: Any) -> None:
            box["ok"], box["value"] = ok, value
            done.set()

        self._queue.put(("call_sync", fn, resolve))
        if not done.wait(timeout):
            raise TimeoutError("store writer did not answer")
        if not box["ok"]:
            raise box["value"]
        return box["value"]

    def count(self, name: str, n: int = 1, at: float | None = None) -> None:
        """Add to a per-hour counter without waiting (written with the next batch)."""
        self._queue.put(("count", name, n, at if at is not None else time.time()))

    # -- the thread ------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = open_write_connection(self.path)
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < self.batch_max:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item[0] == "stop" for item in batch)
                self._write_batch(conn, [item for item in batch if item[0] != "stop"])
                if stop:
                    break
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
        """Write a batch in queue order: each run of events (and counters) with one statement,
        each run of queued functions in one transaction."""
        if not batch:
            return
        outcomes: list[tuple[tuple[Any, ...], bool, Any]] = []
        for queued_functions, run in itertools.groupby(batch, key=lambda item: item[0] in ("call", "call_sync")):
            outcomes += self._write_calls(conn, list(run)) if queued_functions else self._write_events(conn, list(run))
        self.batches += 1
        self.items += len(outcomes)
        self._resolve(outcomes)
        for callback in self.after_commit:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("store: after-commit callback failed")

    # -- events ------------------------------------------------------------
    def _write_events(self, conn: sqlite3.Connection, run: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        counts: Counter[tuple[int, str]] = Counter()
        events = []
        for item in run:
            if item[0] == "count":
                counts[(hour_of(item[3]), item[1])] += item[2]
            else:
                events.append(item)
        try:
            stored = self._store_events(conn, [item[1] for item in events], Counter(counts))
            return [(item, True, value) for item, value in zip(events, stored)]
        except Exception as exc:  # noqa: BLE001 - find the culprit: one item at a time
            if not events:
                log.error("store: counters could not be written: %s", exc)
                return []
            log.warning("store: a batch of %d events failed (%s); storing them one at a time", len(events), exc)
        self.fallbacks += 1
        outcomes: list[tuple[Any, ...]] = []
        for item in events:
            try:
                outcomes.append((item, True, self._store_events(conn, [item[1]], Counter())[0]))
            except Exception as exc:  # noqa: BLE001 - this item fails alone
                log.error("store: event could not be stored: %s", exc)
                outcomes.append((item, False, exc))
        if counts:
            try:
                ingest.write(conn, [], [], [], [ingest.Row((hour, name, n)) for (hour, name), n in counts.items()])
            except Exception as exc:  # noqa: BLE001
                log.error("store: counters could not be written: %s", exc)
        return outcomes

    def _store_events(self, conn: sqlite3.Connection, items: list[Incoming],
                      counts: Counter[tuple[int, str]]) -> list[Stored]:
        """Store events (plus ``counts``) with one lookup and one committed write; the same
        result as storing them one by one (tests/unit/test_writer_batches.py)."""
        calls = sorted({(i.source, i.event.call_id) for i in items if i.event.call_id})
        found = ingest.lookup(conn, [(i.source, i.event.dedupe_key) for i in items], calls) if items else {}
        already = set(map(tuple, found.get("stored", [])))
        current: dict[tuple[str, str], CallRecord] = {}
        first_seen: dict[tuple[str, str], float] = {}
        for row in found.get("calls", []):
            key = (row["source"], row["call_id"])
            current[key] = CallRecord.from_dict(row)
            first_seen[key] = row["first_received_at"]
        history: dict[tuple[str, str], list[CallEvent]] = {}
        for source, call_id, event_json in found.get("history", []):
            history.setdefault((source, call_id), []).append(CallEvent.from_dict(json.loads(event_json)))

        next_id = (found.get("max_id") or 0) + 1
        results: list[Stored] = []
        event_rows: list[ingest.Row] = []
        call_rows: dict[tuple[str, str], ingest.Row] = {}
        for item in items:
            ev = item.event
            key = (item.source, ev.dedupe_key)
            if key in already:
                counts[(hour_of(item.received_at), "deduped")] += 1
                results.append(Stored(True, source=item.source, event=ev, received_at=item.received_at))
                continue
            already.add(key)
            if item.row is None:
                item.prepare()
            before = record = None
            if ev.call_id:
                call = (item.source, ev.call_id)
                before = current.get(call)
                past = history.setdefault(call, [])
                if past:
                    record = fold_events(item.source, [*past, ev])
                    call_rows[call] = _call_row(record, first_seen[call], item.received_at)
                else:  # the call's first event: its record was folded by prepare()
                    record = item.new_record
                    call_rows[call] = item.new_call  # type: ignore[assignment]
                    first_seen[call] = item.received_at
                past.append(ev)
                current[call] = record  # type: ignore[assignment]
            outcome = record.outcome if record else None
            values = (next_id, outcome, *item.row)  # type: ignore[misc]
            text = None if item.row_json is None else f"[{next_id},{json.dumps(outcome)},{item.row_json}"
            event_rows.append(ingest.Row(values, text))
            results.append(Stored(False, next_id, item.source, ev, before, record, item.received_at))
            next_id += 1
            counts[(hour_of(item.received_at), "stored")] += 1

        new = [value for value in results if not value.duplicate]
        jobs = [ingest.Row(job) for hook in self.hooks for job in hook(new)] if new else []
        ingest.write(conn, event_rows, list(call_rows.values()), jobs,
                     [ingest.Row((hour, name, n)) for (hour, name), n in counts.items()])
        return results

    # -- queued functions --------------------------------------------------
    def _write_calls(self, conn: sqlite3.Connection, run: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        try:
            return self._transaction(conn, run, isolate=False)
        except _ItemFailed:
            # Somebody's function failed: run them again, each in its own savepoint.
            self.fallbacks += 1
            try:
                return self._transaction(conn, run, isolate=True)
            except Exception as exc:  # noqa: BLE001
                return self._failed(conn, run, exc)
        except Exception as exc:  # noqa: BLE001 - the transaction could not be committed
            return self._failed(conn, run, exc)

    def _failed(self, conn: sqlite3.Connection, run: list[tuple[Any, ...]], exc: Exception) -> list[Any]:
        log.error("store: %d queued writes could not be committed: %s", len(run), exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(item, False, exc) for item in run]

    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, run: list[tuple[Any, ...]], *, isolate: bool
    ) -> list[tuple[tuple[Any, ...], bool, Any]]:
        outcomes: list[tuple[tuple[Any, ...], bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        for item in run:
            if isolate:
                conn.execute("SAVEPOINT item")
            try:
                value = item[1](conn)
            except Exception as exc:  # noqa: BLE001 - this item fails alone
                if not isolate:
                    conn.execute("ROLLBACK")
                    raise _ItemFailed from exc
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
                log.warning("store: item failed: %r", exc)
                outcomes.append((item, False, exc))
                continue
            if isolate:
                conn.execute("RELEASE item")
            outcomes.append((item, True, value))
        conn.execute("COMMIT")
        return outcomes

    @staticmethod
    def _resolve(outcomes: list[tuple[tuple[Any, ...], bool, Any]]) -> None:
        by_loop: dict[Any, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for item, ok, value in outcomes:
            if item[0] == "call_sync":
                item[2](ok, value)
            else:
                by_loop.setdefault(item[2], []).append((item[3], ok, value))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, results)
            except RuntimeError:  # loop closed while we were writing
                pass


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
