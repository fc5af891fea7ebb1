"""The one thread that owns the SQLite write connection.

Request handlers hand it an event and await the returned future; the thread
drains everything queued (up to ``batch_max``), writes it in ONE
``BEGIN IMMEDIATE ... COMMIT`` (WAL, ``synchronous=FULL``) and only then
resolves the futures: a 2xx is never sent for an event that is not on disk
(group commit).  If any item of a batch fails, the batch is rolled back and
written again with a SAVEPOINT per item, so one bad item fails alone while
the rest of its batch commits.
"""

from __future__ import annotations

import asyncio
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
from connector.store import schema

log = logging.getLogger(__name__)
T = TypeVar("T")

_CALL_COLS = list(schema.CALL_COLUMNS)


_EVENT_PLACEHOLDERS = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_EVENTS_PREFIX = (
    "INSERT INTO events (source, dedupe_key, received_at, event_type, call_id, is_call, status, outcome, phone, "
    "occurred_at, sequence, content_type, headers_json, body, event_json) VALUES "
)
_CALL_PLACEHOLDERS = "(" + ",".join("?" for _ in _CALL_COLS) + ")"
_UPSERT_CALLS_PREFIX = f"INSERT INTO calls ({', '.join(_CALL_COLS)}) VALUES "
_UPSERT_CALLS_SUFFIX = " ON CONFLICT(source, call_id) DO UPDATE SET " + ", ".join(
    f"{c}=excluded.{c}" for c in _CALL_COLS if c not in ("source", "call_id", "first_received_at")
)
_CALL_JSON = ", ".join(f"'{c}', t.{c}" for c in _CALL_COLS)


def _json_rows(conn: sqlite3.Connection, select: str, table: str, columns: tuple[str, str],
               keys: list[tuple[Any, ...]]) -> list[Any]:
    """Rows of ``table`` whose ``columns`` match one of ``keys``, aggregated by ``select`` into
    one JSON array: one statement and one step whatever the number of rows.  A join against
    the VALUES list (not ``(a, b) IN (VALUES ...)``, which scans) so the index is searched."""
    if not keys:
        return []
    values = ",".join(["(?,?)"] * len(keys))
    raw = conn.execute(
        f"SELECT {select} FROM (VALUES {values}) AS k JOIN {table} t "
        f"ON t.{columns[0]} = k.column1 AND t.{columns[1]} = k.column2",
        [v for key in keys for v in key],
    ).fetchone()[0]
    return json.loads(raw) if raw else []


class _ItemFailed(Exception):
    """An item failed in a batch written without savepoints."""


@dataclass(slots=True)
class Incoming:
    """A verified, normalized event waiting to be stored."""

    source: str
    event: CallEvent
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # already redacted
    received_at: float = field(default_factory=time.time)


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


# A hook runs on the writer thread inside the events' transaction, after the
# events and their call records were written (new events only, in order): the
# sync outbox enqueues work here, so "event stored" and "work queued" commit
# together or not at all.
Hook = Callable[[sqlite3.Connection, list[Stored]], None]


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


def row_to_record(row: sqlite3.Row | None) -> CallRecord | None:
    return None if row is None else CallRecord.from_dict(dict(row))


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
            conn = schema.connect(self.path)
            conn.row_factory = sqlite3.Row
            schema.migrate(conn)
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
        if not batch:
            return
        try:
            outcomes = self._transaction(conn, batch, isolate=False)
        except _ItemFailed:
            # Somebody's item failed: write the batch again, each item in its own savepoint.
            self.fallbacks += 1
            try:
                outcomes = self._transaction(conn, batch, isolate=True)
            except Exception as exc:  # noqa: BLE001
                outcomes = self._failed(conn, batch, exc)
        except Exception as exc:  # noqa: BLE001 - the whole batch could not be stored
            outcomes = self._failed(conn, batch, exc)
        self.batches += 1
        self.items += len(outcomes)
        self._resolve(outcomes)
        for callback in self.after_commit:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("store: after-commit callback failed")

    def _failed(self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]], exc: Exception) -> list[Any]:
        log.error("store: batch of %d could not be committed: %s", len(batch), exc)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(item, False, exc) for item in batch if item[0] != "count"]

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]], *, isolate: bool
    ) -> list[tuple[tuple[Any, ...], bool, Any]]:
        counters: Counter[tuple[int, str]] = Counter()
        outcomes: list[tuple[tuple[Any, ...], bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        if not isolate:
            events = [item for item in batch if item[0] == "event"]
            if events:
                try:
                    stored = self._insert_many(conn, [item[1] for item in events], counters)
                except Exception as exc:  # noqa: BLE001 - find the culprit item by item
                    conn.execute("ROLLBACK")
                    raise _ItemFailed from exc
                outcomes += [(item, True, value) for item, value in zip(events, stored)]
        for item in batch:
            kind = item[0]
            if kind == "count":
                counters[(hour_of(item[3]), item[1])] += item[2]
                continue
            if kind == "event" and not isolate:
                continue
            if isolate:
                conn.execute("SAVEPOINT item")
            try:
                value: Any = self._insert_many(conn, [item[1]], counters)[0] if kind == "event" else item[1](conn)
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
        add_counts(conn, counters)
        conn.execute("COMMIT")
        return outcomes

    def _insert_many(
        self, conn: sqlite3.Connection, items: list[Incoming], counters: Counter[tuple[int, str]]
    ) -> list[Stored]:
        """Store a batch of events with a handful of set-based statements (the same result as
        storing them one by one: tests/unit/test_writer_batches.py).  Every sqlite3 call hands the GIL to the event loop and
        waits to get it back, so statements per batch, not per event, keep the writer fast."""
        already = set(
            map(tuple, _json_rows(conn, "json_group_array(json_array(t.source, t.dedupe_key))", "events",
                                  ("source", "dedupe_key"), [(i.source, i.event.dedupe_key) for i in items]))
        )
        fresh: list[Incoming] = []
        results: list[Stored | None] = []
        for item in items:
            key = (item.source, item.event.dedupe_key)
            if key in already:
                counters[(hour_of(item.received_at), "deduped")] += 1
                results.append(Stored(True, source=item.source, event=item.event, received_at=item.received_at))
            else:
                already.add(key)
                fresh.append(item)
                results.append(None)
        if not fresh:
            return [r for r in results if r is not None]

        calls = sorted({(i.source, i.event.call_id) for i in fresh if i.event.call_id})
        current: dict[tuple[str, str], CallRecord] = {}
        first_seen: dict[tuple[str, str], float] = {}
        history: dict[tuple[str, str], list[CallEvent]] = {}
        if calls:
            for row in _json_rows(conn, f"json_group_array(json_object({_CALL_JSON}))", "calls",
                                  ("source", "call_id"), calls):
                key = (row["source"], row["call_id"])
                current[key] = CallRecord.from_dict(row)
                first_seen[key] = row["first_received_at"]
            if current:
                for source, call_id, event_json in _json_rows(
                    conn, "json_group_array(json_array(t.source, t.call_id, t.event_json))", "events",
                    ("source", "call_id"), sorted(current)):
                    history.setdefault((source, call_id), []).append(CallEvent.from_dict(json.loads(event_json)))

        rows, stored = [], []
        for item in fresh:
            ev = item.event
            before = record = None
            if ev.call_id:
                key = (item.source, ev.call_id)
                before = current.get(key)
                past = history.setdefault(key, [])
                record = fold(None, item.source, ev) if not past else fold_events(item.source, [*past, ev])
                past.append(ev)
                current[key] = record
                first_seen.setdefault(key, item.received_at)
            rows.append(self._event_row(item, record))
            stored.append(Stored(False, None, item.source, ev, before, record, item.received_at))
            counters[(hour_of(item.received_at), "stored")] += 1

        cur = conn.execute(_INSERT_EVENTS_PREFIX + ",".join([_EVENT_PLACEHOLDERS] * len(rows)),
                           [v for row in rows for v in row])
        if cur.rowcount != len(rows):
            raise sqlite3.IntegrityError(f"{len(rows)} new events expected, {cur.rowcount} written")
        first_id = cur.lastrowid - len(rows) + 1
        for offset, value in enumerate(stored):
            value.event_id = first_id + offset

        touched = {(v.source, v.event.call_id): v for v in stored if v.record is not None}
        if touched:
            call_rows = []
            for key, value in touched.items():
                record = current[key]
                values = record.to_dict() | {"phone": record.phone, "first_received_at": first_seen[key],
                                             "updated_at": value.received_at}
                call_rows.append([values.get(c) for c in _CALL_COLS])
            conn.execute(_UPSERT_CALLS_PREFIX + ",".join([_CALL_PLACEHOLDERS] * len(call_rows)) + _UPSERT_CALLS_SUFFIX,
                         [v for row in call_rows for v in row])
        for hook in self.hooks:
            hook(conn, stored)
        it = iter(stored)
        return [r if r is not None else next(it) for r in results]

    @staticmethod
    def _event_row(item: Incoming, record: CallRecord | None) -> tuple[Any, ...]:
        ev = item.event
        return (
            item.source,
            ev.dedupe_key,
            item.received_at,
            ev.event_type,
            ev.call_id,
            1 if ev.is_call_event else 0,
            ev.status,
            record.outcome if record else None,
            ev.phone,
            ev.occurred_at,
            ev.sequence,
            item.content_type,
            json.dumps(item.headers),
            item.body,
            json.dumps(ev.to_dict(), default=str),
        )

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
