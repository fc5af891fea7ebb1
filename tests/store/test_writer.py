"""The store writer on a real store (SQLite and PostgreSQL): typed tasks, group commit with a constant number
of statements per batch, ids from RETURNING, a failing task fails alone, and the loop survives anything."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import formats
from connector.ingest import Incoming
from connector.store import events as store_events
from connector.store.db import dicts
from connector.store.writer import Count, Reply, Run, StoreEvent, StoreWriter, open_write_db

STEPS = ["call.initiated", "call.answered", "call.completed", "call.failed", "call.voicemail.detected"]
T0 = 1_780_000_000


def incoming(source: str, call: int, step: str, n: int) -> Incoming:
    payload = {"event": step, "call_uuid": f"c{call}", "from": "+12025550100", "to": f"+1202555{call:04d}",
               "direction": "outbound", "initiated_at": "2026-06-04T09:00:00Z"}
    if step == "call.completed":
        payload |= {"answered_at": "2026-06-04T09:00:07Z", "ended_at": "2026-06-04T09:03:00Z", "duration_seconds": 173}
    if step == "call.failed":
        payload |= {"sip_response_code": 486, "ended_at": "2026-06-04T09:00:30Z"}
    body = json.dumps(payload).encode()
    event = formats.normalize(body, "application/json", {})[0]
    return Incoming(source, event, body, "application/json", {"X": "y"}, received_at=T0 + n)


class Answers(list):
    """Replies of the tasks made with :meth:`event` / :meth:`run`, in the order they came."""

    def reply(self) -> Reply:
        return Reply(callback=lambda ok, value: self.append((ok, value)))

    def event(self, item: Incoming) -> StoreEvent:
        return StoreEvent(item, self.reply())

    def run(self, fn) -> Run:
        return Run(fn, self.reply())


class CountingDb:
    """A Db that counts the statements sent through it."""

    def __init__(self, db) -> None:
        self._db = db
        self.statements = 0

    def execute(self, sql, params=()):
        self.statements += 1
        return self._db.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._db, name)


@pytest.fixture
def store(target):
    db = open_write_db(target)
    yield db
    db.close()


def snapshot(db) -> dict:
    return {
        "events": sorted(tuple(r) for r in db.execute(
            "SELECT source, dedupe_key, event_type, call_id, status, outcome, phone, event_json FROM events")),
        # (PostgreSQL's calls has an explicit rowid column, SQLite's an implicit one)
        "calls": sorted(tuple(v for k, v in row.items() if k != "rowid") for row in dicts(db.execute("SELECT * FROM calls"))),
        "jobs": sorted(tuple(r) for r in db.execute("SELECT source, call_id, status, created_at FROM jobs")),
        "stats": sorted(tuple(r) for r in db.execute("SELECT hour, name, n FROM stats_hourly")),
    }


def clear(db) -> None:
    with db.transaction():
        for table in ("events", "calls", "jobs", "stats_hourly"):
            db.execute(f"DELETE FROM {table}")


ITEM = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3), st.sampled_from(STEPS))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(ITEM, max_size=6), batch=st.lists(ITEM, min_size=1, max_size=25))
def test_one_batch_stores_what_one_event_at_a_time_stores(store, before, batch):
    results = []
    for mode in ("batch", "single"):
        clear(store)
        writer = StoreWriter(":unused:")
        answers = Answers()
        n = 0
        for source, call, step in before:  # history already in the store
            n += 1
            writer.write(store, [answers.event(incoming(source, call, step, n))])
        items = []
        for source, call, step in batch:
            n += 1
            items.append(answers.event(incoming(source, call, step, n)))
        answers.clear()
        if mode == "batch":
            writer.write(store, items)
        else:
            for item in items:
                writer.write(store, [item])
        assert all(ok for ok, _ in answers)
        assert writer.fallbacks == 0  # the set-based path wrote it, not the event-by-event fallback
        new = [v for _, v in answers if not v.duplicate]
        ids = [v.event_id for v in new]
        assert len(set(ids)) == len(ids)
        # every id is the row of its own event (RETURNING, matched by key, not by position)
        rows = {r[0]: (r[1], r[2]) for r in store.execute("SELECT id, source, dedupe_key FROM events")}
        assert all(rows[v.event_id] == (v.source, v.event.dedupe_key) for v in new)
        results.append((snapshot(store), [v.duplicate for _, v in answers],
                        [(v.record.outcome if v.record else None) for _, v in answers]))
    assert results[0] == results[1]


def test_a_batch_costs_the_same_statements_whatever_its_size(store):
    writer = StoreWriter(":unused:")
    counted = CountingDb(store)
    answers = Answers()
    sizes = {}
    for size in (1, 50, 200):
        known = 10_000 * size
        writer.write(counted, [answers.event(incoming("a", known, "call.initiated", known))])  # a call to refold
        counted.statements = 0
        batch = [answers.event(incoming("a", known + i, STEPS[i % len(STEPS)], known + i)) for i in range(size)]
        batch[0] = answers.event(incoming("a", known, "call.completed", known + 1))
        writer.write(counted, [*batch, Count("rejected:bad_signature", 1, T0)])
        sizes[size] = counted.statements
    # inside BEGIN ... COMMIT: 3 lookups (keys, calls, the stored calls' events) and 4 writes; on PostgreSQL
    # one more, the lock on the batch's events and calls (several writer processes)
    assert set(sizes.values()) == {7 if store.dialect == "sqlite" else 8}, sizes
    assert all(ok and not v.duplicate for ok, v in answers)


def test_a_failing_function_fails_alone_and_events_around_it_are_stored(store):
    writer = StoreWriter(":unused:")
    answers = Answers()

    def boom(db):
        raise ValueError("bad item")

    def mark(name):
        return lambda db: store_events.distinct_types(db) and name

    writer.write(store, [answers.event(incoming("a", 0, "call.completed", 0)), answers.run(mark("x")),
                         answers.run(boom), answers.run(mark("y")), answers.event(incoming("a", 1, "call.completed", 1)),
                         answers.event(incoming("a", 2, "call.completed", 2))])
    assert [ok for ok, _ in answers] == [True, True, False, True, True, True]
    assert [v for ok, v in answers if ok and isinstance(v, str)] == ["x", "y"]
    assert writer.fallbacks == 1  # the functions were run again, each in its own savepoint
    assert store.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    assert dict(store.execute("SELECT name, n FROM stats_hourly").fetchall()) == {"stored": 3}


def test_an_event_another_writer_took_fails_alone(store):
    """An error about one event (a UNIQUE key taken behind the writer's back) is not a storage failure:
    the batch is written event by event and only that event fails."""
    writer = StoreWriter(":unused:")
    answers = Answers()
    items = [incoming("a", i, "call.completed", i) for i in range(3)]
    taken = items[1]
    with store.transaction():
        store.execute("INSERT INTO events (source, dedupe_key, received_at, event_type, body) VALUES (?, ?, 0, 'x', ?)",
                      (taken.source, taken.event.dedupe_key, b""))
    original = store_events.stored_keys
    store_events.stored_keys = lambda db, keys: original(db, [k for k in keys if k[1] != taken.event.dedupe_key])
    try:
        writer.write(store, [answers.event(item) for item in items])
    finally:
        store_events.stored_keys = original
    assert [ok for ok, _ in answers] == [True, False, True] and writer.fallbacks == 1
    assert writer.last_error is None  # not a storage failure


class Fatal(BaseException):
    """Not an Exception: what used to end the writer thread."""


def test_the_writer_thread_survives_anything(target):
    writer = StoreWriter(target)
    writer.start()
    try:
        def explode(db):
            raise Fatal("boom")

        with pytest.raises(Exception, match="boom"):  # the caller gets an error, the thread goes on
            writer.execute_sync(explode, timeout=5)
        writer.count("weird", n=None)  # a malformed counter: dropped with a log line
        writer.submit(Count("fine", 3, T0))
        assert writer.execute_sync(lambda db: db.execute("SELECT 41 + 1").fetchone()[0], timeout=5) == 42
        assert writer.alive
        assert writer.execute_sync(
            lambda db: db.execute("SELECT n FROM stats_hourly WHERE name = 'fine'").fetchone()[0], timeout=5) == 3
    finally:
        writer.stop()


def test_jobs_queued_by_a_commit_are_announced_once(target):
    writer = StoreWriter(target)
    announced = []
    writer.on_jobs_queued.append(lambda: announced.append(1))
    writer.start()
    try:
        answers = Answers()
        for item in (incoming("a", 0, "call.initiated", 0), incoming("a", 0, "call.completed", 1)):
            writer.submit(answers.event(item))
        assert writer.execute_sync(lambda db: db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]) == 1
        assert len(answers) == 2 and sum(announced) == 1
    finally:
        writer.stop()


def test_counters_travel_with_the_batch(store):
    writer = StoreWriter(":unused:")
    answers = Answers()
    writer.write(store, [Count("rejected:bad_signature", 2, T0), answers.event(incoming("a", 0, "call.completed", 0)),
                         Count("rejected:bad_signature", 1, T0 + 1)])
    hour = T0 // 3600 * 3600
    assert Counter(dict(((h, n), c) for h, n, c in store.execute("SELECT hour, name, n FROM stats_hourly"))) == Counter(
        {(hour, "rejected:bad_signature"): 3, (hour, "stored"): 1})


def test_a_started_writer_gets_the_gil_back_quickly(target):
    """Each statement hands the GIL to the event loop; the writer must not wait 5 ms per statement to get
    it back (the interpreter's default switch interval)."""
    import sys

    from connector.store import writer as writer_module

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    writer = StoreWriter(target)
    try:
        writer.start()
        assert sys.getswitchinterval() <= writer_module.SWITCH_INTERVAL
    finally:
        writer.stop()
        sys.setswitchinterval(previous)
