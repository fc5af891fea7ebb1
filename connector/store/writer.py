"""The one thread that owns the SQLite write connection.

Request handlers hand it an event and await the returned future; the thread
drains everything queued (up to ``batch_max``), writes the events of the batch
with one committed statement (:mod:`connector.store.ingest`; WAL,
``synchronous=FULL``) and only then resolves the futures: a 2xx is never sent
for an event that is not on disk (group commit).  Functions queued with
:meth:`StoreWriter.execute` run in one ``BEGIN IMMEDIATE ... COMMIT`` per run of
them.  If a write fails because of one item, its items are written again one at a
time, so the bad item fails alone while the rest of its batch commits; if storage
itself fails (locked, full, read-only, I/O error) the whole batch fails at once
(:mod:`connector.store.faults`).  No exception ends the thread; counters of a failed
write are kept and written with a later one (retried every ``RETRY_SECONDS``).
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
from typing import Any, TypeVar

from connector.calls import fold_events
from connector.model import CallEvent, CallRecord
from connector.store import faults, ingest, schema
from connector.store.faults import StorageUnavailable, Unstorable  # noqa: F401 - what futures fail with
from connector.store.items import Hook, Incoming, Stored, add_counts, call_row, hour_of  # noqa: F401 - re-exported

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 1.0  # kept counters are written again this often while storage fails


class _ItemFailed(Exception):
    """An item failed in a transaction written without savepoints."""


def open_write_connection(path: str, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    """The writer's connection: pragmas, schema brought up to date, ingest view and trigger."""
    conn = schema.connect(path)
    if busy_timeout_ms is not None:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.row_factory = sqlite3.Row
    schema.migrate(conn)
    ingest.prepare(conn)
    return conn


class StoreWriter:
    def __init__(self, path: str, *, batch_max: int = 256, hooks: Iterable[Hook] = (),
                 busy_timeout_ms: int | None = None) -> None:
        self.path = str(path)
        self.batch_max = batch_max
        self.busy_timeout_ms = busy_timeout_ms
        self.hooks: list[Hook] = list(hooks)
        self.after_commit: list[Callable[[], None]] = []  # run on the writer thread after each commit
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.batches = 0
        self.items = 0
        self.fallbacks = 0  # batches written again item by item because one item failed
        self.held_counts: Counter[tuple[int, str]] = Counter()  # counters of failed writes, written later
        self.last_error: str | None = None  # the storage failure since the last successful write
        self.last_error_at: float | None = None
        self.last_commit_at: float | None = None  # monotonic time of the last successful write
        self._busy_since: float | None = None  # monotonic start of the batch being written

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

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def busy_seconds(self) -> float:
        """How long the batch being written has taken so far (0 when idle): a stalled writer."""
        since = self._busy_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def status(self) -> dict[str, Any]:
        """What the writer knows about storage, without touching it (safe from any thread)."""
        try:
            held: int | None = sum(self.held_counts.values())
        except RuntimeError:  # the writer thread is changing them right now
            held = None
        return {"alive": self.alive, "busy_seconds": round(self.busy_seconds(), 3), "queued": self.depth,
                "last_error": self.last_error, "last_error_at": self.last_error_at, "held_counters": held}

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
            conn = open_write_connection(self.path, self.busy_timeout_ms)
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                try:  # while counters are kept after a failure, retry them even without new work
                    batch = [self._queue.get(timeout=RETRY_SECONDS if self.held_counts else None)]
                except queue.Empty:
                    batch = []
                while len(batch) < self.batch_max:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item[0] == "stop" for item in batch)
                work = [item for item in batch if item[0] != "stop"]
                self._busy_since = time.monotonic()
                try:
                    self._write_batch(conn, work)
                except BaseException as exc:  # noqa: BLE001 - nothing may end the writer thread
                    self._survive(conn, work, exc)
                finally:
                    self._busy_since = None
                if stop:
                    break
        finally:
            conn.close()

    def _survive(self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]], exc: BaseException) -> None:
        """An unexpected failure: answer every waiting item with it, keep the counters, go on."""
        log.error("store: writing a batch of %d items failed unexpectedly", len(batch), exc_info=exc)
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001
            log.warning("store: rollback after a failed batch failed too")
        self.held_counts.update(_counts(item for item in batch if item[0] == "count"))
        if faults.storage_failure(exc):
            self._failed_storage(exc)
        try:
            self._resolve([(item, False, faults.for_sender(exc)) for item in batch if item[0] != "count"])
        except Exception:  # noqa: BLE001
            log.exception("store: could not answer the items of a failed batch")

    def _failed_storage(self, exc: BaseException) -> None:
        self.last_error, self.last_error_at = faults.describe(exc), time.time()

    def _committed(self) -> None:
        self.last_error = self.last_error_at = None
        self.last_commit_at = time.monotonic()

    def _write_batch(self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
        """Write a batch in queue order: each run of events (and counters) with one statement,
        each run of queued functions in one transaction."""
        if not batch and not self.held_counts:
            return
        outcomes: list[tuple[tuple[Any, ...], bool, Any]] = []
        if not batch:  # only kept counters to write
            self._write_events(conn, [])
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
        events = [item for item in run if item[0] != "count"]
        counts = _counts(item for item in run if item[0] == "count")
        counts.update(self.held_counts)  # counters a failed write kept
        self.held_counts = Counter()
        try:
            stored = self._store_events(conn, [item[1] for item in events], Counter(counts))
            self._committed()
            return [(item, True, value) for item, value in zip(events, stored)]
        except Exception as exc:  # noqa: BLE001 - storage failed, or one item: find the culprit
            if not events or faults.storage_failure(exc):
                return self._storage_failed(events, counts, exc)
            log.warning("store: a batch of %d events failed (%s); storing them one at a time", len(events), exc)
        self.fallbacks += 1
        outcomes: list[tuple[Any, ...]] = []
        for index, item in enumerate(events):
            try:
                outcomes.append((item, True, self._store_events(conn, [item[1]], Counter())[0]))
                self._committed()
            except Exception as exc:  # noqa: BLE001 - this item fails alone, unless storage failed
                if faults.storage_failure(exc):
                    return outcomes + self._storage_failed(events[index:], counts, exc)
                log.error("store: event could not be stored: %s", exc)
                outcomes.append((item, False, faults.for_sender(exc)))
        if counts:
            try:
                ingest.write(conn, [], [], [], [ingest.Row((hour, name, n)) for (hour, name), n in counts.items()])
            except Exception as exc:  # noqa: BLE001
                self._storage_failed([], counts, exc)
        return outcomes

    def _storage_failed(self, events: list[tuple[Any, ...]], counts: Counter[tuple[int, str]],
                        exc: Exception) -> list[tuple[Any, ...]]:
        """Storage failed: every event of the run fails at once; its counters are kept."""
        self.held_counts.update(counts)
        self._failed_storage(exc)
        log.error("store: %d events and %d counters could not be written: %s", len(events), len(counts),
                  faults.describe(exc))
        failure = faults.for_sender(exc)
        return [(item, False, failure) for item in events]

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
                    call_rows[call] = call_row(record, first_seen[call], item.received_at)
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
            outcomes = self._transaction(conn, run, isolate=False)
            self._committed()
            return outcomes
        except _ItemFailed as failed:
            if faults.storage_failure(failed.__cause__ or failed):  # not somebody's function: storage
                return self._failed(conn, run, failed.__cause__ or failed)
            # Somebody's function failed: run them again, each in its own savepoint.
            self.fallbacks += 1
            try:
                return self._transaction(conn, run, isolate=True)
            except Exception as exc:  # noqa: BLE001
                return self._failed(conn, run, exc)
        except Exception as exc:  # noqa: BLE001 - the transaction could not be committed
            return self._failed(conn, run, exc)

    def _failed(self, conn: sqlite3.Connection, run: list[tuple[Any, ...]], exc: BaseException) -> list[Any]:
        log.error("store: %d queued writes could not be committed: %s", len(run), exc)
        if faults.storage_failure(exc):
            self._failed_storage(exc)
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection rolls back by itself when it can
            log.warning("store: rollback failed after: %s", exc)
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


def _counts(items: Iterable[tuple[Any, ...]]) -> Counter[tuple[int, str]]:
    """Per-hour counters from queued ``("count", name, n, at)`` items; a malformed one is dropped."""
    counts: Counter[tuple[int, str]] = Counter()
    for item in items:
        try:
            counts[(hour_of(float(item[3])), str(item[1]))] += int(item[2])
        except (TypeError, ValueError, OverflowError):
            log.error("store: dropped a malformed counter %r", item[1:])
    return counts


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
