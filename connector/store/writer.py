"""The one thread per process that writes to the store.

Its queue carries typed tasks: :class:`StoreEvent` (a verified event; the request handler awaits its
reply), :class:`Run` (a function of the connection, e.g. a sync worker's progress), :class:`Count`
(a per-hour counter, nobody waits) and :class:`Stop`.  The loop is generic: it takes everything
queued (up to ``batch_max``), runs each run of like tasks in one transaction, replies only after
that transaction committed, and goes on whatever happens - no task and no exception ends it.

* Events (with the counters queued among them) are written by :func:`connector.store.batch.write`:
  one transaction, a constant number of statements, whatever the batch size (group commit: a burst
  costs one commit).  If the batch fails because of one event, its events are written again one at
  a time so the bad one fails alone; if storage itself fails (locked, full, read-only, I/O error) the
  whole batch fails at once and its counters are kept and written later (``RETRY_SECONDS``).
* Consecutive :class:`Run` tasks share one transaction; when one of them raises, they are run
  again each in its own savepoint, so only that one fails.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from connector.ingest import Incoming, Stored, hour_of
from connector.store import batch, faults, migrations
from connector.store.db import Db, StoreTarget, open_db, open_sqlite
from connector.store.faults import StorageUnavailable, Unstorable  # noqa: F401 - what replies fail with

__all__ = ["Count", "Incoming", "Reply", "Run", "Stop", "StoreEvent", "StoreWriter", "Stored", "open_write_db"]

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 1.0  # kept counters are written again this often while storage fails
# Every statement hands the GIL to the busy event loop while SQLite works, and the writer waits for it back
# up to the interpreter's switch interval (5 ms by default): a batch's eight statements could wait 40 ms.
SWITCH_INTERVAL = 0.0005


# -- tasks --------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """Where a task's result goes: a future of an event loop, or a callback (threads without a loop)."""

    future: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    callback: Callable[[bool, Any], None] | None = None


class Task:
    __slots__ = ()


@dataclass(slots=True)
class StoreEvent(Task):
    item: Incoming
    reply: Reply = field(default_factory=Reply)


@dataclass(slots=True)
class Run(Task):
    fn: Callable[[Db], Any]
    reply: Reply = field(default_factory=Reply)


@dataclass(slots=True)
class Count(Task):
    name: str
    n: int = 1
    at: float = 0.0


@dataclass(slots=True)
class Stop(Task):
    pass


Outcome = tuple[Reply, bool, Any]  # (where to, succeeded, value or exception)


def open_write_db(target: StoreTarget, busy_timeout_ms: int | None = None) -> Db:
    """The writer's connection, with the schema brought up to date."""
    if target.path is not None and busy_timeout_ms is not None:
        db: Db = open_sqlite(target.path, busy_timeout_ms=busy_timeout_ms)
    else:
        db = open_db(target)
    try:
        migrations.migrate(db)
    except BaseException:
        db.close()
        raise
    return db


class StoreWriter:
    def __init__(self, target: StoreTarget | str | Path, *, batch_max: int = 256, busy_timeout_ms: int | None = None,
                 connect: Callable[[], Db] | None = None) -> None:
        self.target = target if isinstance(target, StoreTarget) else StoreTarget.sqlite(target)
        self.batch_max = batch_max
        self.connect = connect or (lambda: open_write_db(self.target, busy_timeout_ms))
        # Listeners, called on the writer thread after a commit: that queued CRM jobs; with the new events.
        self.on_jobs_queued: list[Callable[[], None]] = []
        self.on_stored: list[Callable[[list[Stored]], None]] = []
        self._queue: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.batches = 0
        self.items = 0
        self.fallbacks = 0  # runs written again one task at a time because one task failed
        self.held_counts: Counter[tuple[int, str]] = Counter()  # counters of failed writes, written later
        self.last_error: str | None = None  # the storage failure since the last successful write
        self.last_error_at: float | None = None
        self.last_commit_at: float | None = None  # monotonic time of the last successful write
        self._busy_since: float | None = None  # monotonic start of the batch being written

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread and self._thread.is_alive():
            self._queue.put(Stop())
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

    # -- queueing tasks (any thread) ---------------------------------------------------
    def submit(self, task: Task) -> None:
        self._queue.put(task)

    def store(self, item: Incoming) -> asyncio.Future[Stored]:
        """Queue one event; the future resolves after its transaction committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Stored] = loop.create_future()
        self._queue.put(StoreEvent(item, Reply(fut, loop)))
        return fut

    def execute(self, fn: Callable[[Db], T]) -> asyncio.Future[T]:
        """Run ``fn(db)`` on the writer thread inside a committed transaction."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(Run(fn, Reply(fut, loop)))
        return fut

    def execute_sync(self, fn: Callable[[Db], T], timeout: float = 30.0) -> T:
        """Blocking variant for threads without an event loop (CLI, tests)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def resolve(ok: bool, value: Any) -> None:
            box["ok"], box["value"] = ok, value
            done.set()

        self._queue.put(Run(fn, Reply(callback=resolve)))
        if not done.wait(timeout):
            raise TimeoutError("store writer did not answer")
        if not box["ok"]:
            raise box["value"]
        return box["value"]

    def count(self, name: str, n: int = 1, at: float | None = None) -> None:
        """Add to a per-hour counter without waiting (written with the next batch)."""
        self._queue.put(Count(name, n, at if at is not None else time.time()))

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            db = self.connect()
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                tasks = self._next_tasks()
                work = [t for t in tasks if not isinstance(t, Stop)]
                self._busy_since = time.monotonic()
                try:
                    self.write(db, work)
                except BaseException as exc:  # noqa: BLE001 - nothing may end the writer thread
                    self._survive(db, work, exc)
                finally:
                    self._busy_since = None
                if len(work) < len(tasks):
                    break
        finally:
            db.close()

    def _next_tasks(self) -> list[Task]:
        """Everything queued, up to ``batch_max``: waits for the first task (while counters are kept
        after a failure, at most ``RETRY_SECONDS``, so they are written even without new work)."""
        try:
            tasks = [self._queue.get(timeout=RETRY_SECONDS if self.held_counts else None)]
        except queue.Empty:
            return []
        while len(tasks) < self.batch_max:
            try:
                tasks.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return tasks

    def write(self, db: Db, tasks: list[Task]) -> None:
        """Write ``tasks`` in queue order (each run of events and counters, each run of functions in one
        transaction), then reply to each.  Also called directly by tests, without the thread."""
        if not tasks and not self.held_counts:
            return
        outcomes: list[Outcome] = []
        queued = 0
        start = 0
        for end in range(1, len(tasks) + 1):
            if end < len(tasks) and isinstance(tasks[end], Run) == isinstance(tasks[start], Run):
                continue
            run = tasks[start:end]
            if isinstance(run[0], Run):
                outcomes += self._write_functions(db, run)  # type: ignore[arg-type]
            else:
                done, jobs = self._write_events(db, run)
                outcomes += done
                queued += jobs
            start = end
        if not tasks:  # only kept counters to write
            self._write_events(db, [])
        self.batches += 1
        self.items += len(outcomes)
        self._reply(outcomes)
        stored = [v for reply, ok, v in outcomes if ok and isinstance(v, Stored) and not v.duplicate]
        self._tell(self.on_jobs_queued if queued else [])
        self._tell(self.on_stored if stored else [], stored)

    @staticmethod
    def _tell(listeners: list[Callable[..., None]], *args: Any) -> None:
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # noqa: BLE001 - a listener's trouble is not the writer's
                log.exception("store: a listener failed after a commit")

    def _survive(self, db: Db, tasks: list[Task], exc: BaseException) -> None:
        """An unexpected failure: answer every waiting task with it, keep the counters, go on."""
        log.error("store: writing %d tasks failed unexpectedly", len(tasks), exc_info=exc)
        db.rollback()
        self.held_counts.update(_counts(tasks))
        if faults.storage_failure(exc):
            self._storage_failed(exc)
        try:
            self._reply([(t.reply, False, faults.for_sender(exc)) for t in tasks if isinstance(t, (StoreEvent, Run))])
        except Exception:  # noqa: BLE001
            log.exception("store: could not answer the tasks of a failed batch")

    def _storage_failed(self, exc: BaseException) -> None:
        self.last_error, self.last_error_at = faults.describe(exc), time.time()

    def _committed(self) -> None:
        self.last_error = self.last_error_at = None
        self.last_commit_at = time.monotonic()

    # -- events ------------------------------------------------------------------------
    def _write_events(self, db: Db, run: list[Task]) -> tuple[list[Outcome], int]:
        """Events and counters in one transaction; returns the outcomes and how many jobs it queued."""
        tasks = [t for t in run if isinstance(t, StoreEvent)]
        counts = _counts(run) + self.held_counts  # with the counters a failed write kept
        self.held_counts = Counter()
        try:
            done = batch.write(db, [t.item for t in tasks], counts)
            self._committed()
            return [(t.reply, True, r) for t, r in zip(tasks, done.results)], len(done.jobs)
        except Exception as exc:  # noqa: BLE001 - storage failed, or one event: find the culprit
            if not tasks or faults.storage_failure(exc):
                return self._events_failed(tasks, counts, exc), 0
            log.warning("store: a batch of %d events failed (%s); storing them one at a time", len(tasks), exc)
        self.fallbacks += 1
        outcomes: list[Outcome] = []
        queued = 0
        for index, task in enumerate(tasks):
            try:
                done = batch.write(db, [task.item])
                self._committed()
                outcomes.append((task.reply, True, done.results[0]))
                queued += len(done.jobs)
            except Exception as exc:  # noqa: BLE001 - this event fails alone, unless storage failed
                if faults.storage_failure(exc):
                    return outcomes + self._events_failed(tasks[index:], counts, exc), queued
                log.error("store: event could not be stored: %s", exc)
                outcomes.append((task.reply, False, faults.for_sender(exc)))
        try:
            batch.write_counts(db, counts)
        except Exception as exc:  # noqa: BLE001
            self._events_failed([], counts, exc)
        return outcomes, queued

    def _events_failed(self, tasks: list[StoreEvent], counts: Counter[tuple[int, str]],
                       exc: Exception) -> list[Outcome]:
        """Storage failed: every event of the run fails at once; its counters are kept."""
        self.held_counts.update(counts)
        self._storage_failed(exc)
        log.error("store: %d events and %d counters could not be written: %s", len(tasks), len(counts),
                  faults.describe(exc))
        failure = faults.for_sender(exc)
        return [(t.reply, False, failure) for t in tasks]

    # -- functions ---------------------------------------------------------------------
    def _write_functions(self, db: Db, run: list[Run]) -> list[Outcome]:
        try:
            with db.transaction():
                values = [task.fn(db) for task in run]
            self._committed()
            return [(task.reply, True, value) for task, value in zip(run, values)]
        except Exception as exc:  # noqa: BLE001 - a function failed, or the commit did
            if faults.storage_failure(exc) or len(run) == 1:
                return self._functions_failed(run, exc)
        # Somebody's function failed: run them again, each in its own savepoint.
        self.fallbacks += 1
        outcomes: list[Outcome] = []
        try:
            with db.transaction():
                for task in run:
                    try:
                        with db.savepoint():
                            outcomes.append((task.reply, True, task.fn(db)))
                    except Exception as exc:  # noqa: BLE001 - this one fails alone
                        if faults.storage_failure(exc):
                            raise
                        log.warning("store: a queued write failed: %r", exc)
                        outcomes.append((task.reply, False, exc))
            self._committed()
            return outcomes
        except Exception as exc:  # noqa: BLE001
            return self._functions_failed(run, exc)

    def _functions_failed(self, run: list[Run], exc: Exception) -> list[Outcome]:
        log.error("store: %d queued writes could not be committed: %s", len(run), exc)
        if faults.storage_failure(exc):
            self._storage_failed(exc)
        return [(task.reply, False, exc) for task in run]

    # -- replies -----------------------------------------------------------------------
    @staticmethod
    def _reply(outcomes: list[Outcome]) -> None:
        by_loop: dict[Any, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for reply, ok, value in outcomes:
            if reply.callback is not None:
                reply.callback(ok, value)
            elif reply.future is not None:
                by_loop.setdefault(reply.loop, []).append((reply.future, ok, value))
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, results)
            except RuntimeError:  # loop closed while we were writing
                pass


def _counts(tasks: Iterable[Task]) -> Counter[tuple[int, str]]:
    """Per-hour counters of the :class:`Count` tasks among ``tasks``; a malformed one is dropped."""
    counts: Counter[tuple[int, str]] = Counter()
    for task in tasks:
        if isinstance(task, Count):
            try:
                counts[(hour_of(float(task.at)), str(task.name))] += int(task.n)
            except (TypeError, ValueError, OverflowError):
                log.error("store: dropped a malformed counter %r", task)
    return counts


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
