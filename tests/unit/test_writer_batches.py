"""The writer's set-based batch path stores exactly what item-by-item writing stores."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connector import formats
from connector.store import ingest
from connector.store.writer import Incoming, StoreWriter, open_write_connection
from connector.sync.outbox import jobs_on_outcome

STEPS = ["call.initiated", "call.answered", "call.completed", "call.failed", "call.voicemail.detected"]


def incoming(source: str, call: int, step: str, n: int) -> Incoming:
    payload = {"event": step, "call_uuid": f"c{call}", "from": "+12025550100", "to": f"+1202555{call:04d}",
               "direction": "outbound", "initiated_at": "2026-06-04T09:00:00Z"}
    if step == "call.completed":
        payload |= {"answered_at": "2026-06-04T09:00:07Z", "ended_at": "2026-06-04T09:03:00Z", "duration_seconds": 173}
    if step == "call.failed":
        payload |= {"sip_response_code": 486, "ended_at": "2026-06-04T09:00:30Z"}
    body = json.dumps(payload).encode()
    event = formats.normalize(body, "application/json", {})[0]
    return Incoming(source, event, body, "application/json", {"X": "y"}, received_at=1_780_000_000 + n)


ITEM = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3), st.sampled_from(STEPS))


def open_store(path: Path) -> sqlite3.Connection:
    return open_write_connection(str(path))


def snapshot(conn: sqlite3.Connection) -> dict:
    return {
        "events": sorted(tuple(r) for r in conn.execute(
            "SELECT source, dedupe_key, event_type, call_id, status, outcome, phone, event_json FROM events")),
        "calls": sorted(tuple(r) for r in conn.execute("SELECT * FROM calls")),
        "jobs": sorted(tuple(r) for r in conn.execute("SELECT source, call_id, status, created_at FROM jobs")),
        "stats": sorted(tuple(r) for r in conn.execute("SELECT * FROM stats_hourly")),
    }


@settings(max_examples=60, deadline=None)
@given(before=st.lists(ITEM, max_size=6), batch=st.lists(ITEM, min_size=1, max_size=25))
def test_one_batch_equals_one_item_at_a_time(before, batch):
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for mode in ("batch", "single"):
            conn = open_store(Path(tmp) / f"{mode}.db")
            writer = StoreWriter(":unused:", hooks=[jobs_on_outcome])
            answers = []
            writer._resolve = lambda outcomes: answers.extend((ok, v) for _, ok, v in outcomes)  # type: ignore[method-assign]
            n = 0
            for source, call, step in before:  # history already in the store
                n += 1
                writer._write_batch(conn, [("event", incoming(source, call, step, n), None, None)])
            items = []
            for source, call, step in batch:
                n += 1
                items.append(("event", incoming(source, call, step, n), None, None))
            answers.clear()
            if mode == "batch":
                writer._write_batch(conn, items)
            else:
                for item in items:
                    writer._write_batch(conn, [item])
            assert all(ok for ok, _ in answers)
            assert writer.fallbacks == 0  # the set-based path wrote it, not the item-by-item fallback
            duplicates = [v.duplicate for _, v in answers]
            ids = [v.event_id for _, v in answers if not v.duplicate]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            results.append((snapshot(conn), duplicates, [
                (v.record.outcome if v.record else None) for _, v in answers]))
            conn.close()
        assert results[0] == results[1]


def test_a_failing_item_fails_alone(tmp_path):
    conn = open_store(tmp_path / "s.db")
    writer = StoreWriter(":unused:")
    answers = []
    writer._resolve = lambda outcomes: answers.extend((ok, v) for _, ok, v in outcomes)  # type: ignore[method-assign]
    good = [("event", incoming("a", i, "call.completed", i), None, None) for i in range(3)]

    def boom(c):
        raise ValueError("bad item")

    writer._write_batch(conn, [good[0], ("call", boom, None, None), *good[1:]])
    assert [ok for ok, _ in answers] == [True, False, True, True] and writer.fallbacks == 1
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    assert Counter(dict(conn.execute("SELECT name, n FROM stats_hourly").fetchall())) == Counter(stored=3)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None)
@given(body=st.binary(min_size=1, max_size=48), call_id=TEXT, agent=st.one_of(st.none(), TEXT),
       dedupe=TEXT, header=TEXT, neighbour_first=st.booleans())
def test_every_value_is_stored_exactly(body, call_id, agent, dedupe, header, neighbour_first):
    """Rows travel to SQLite as JSON; bytes that are not UTF-8 and NUL characters must still
    come back exactly, in the event's own row, its call and its neighbours in the batch."""
    from connector.model import CallEvent

    event = CallEvent("unlimcall", "call.completed", dedupe, call_id=call_id, status="completed",
                      direction="outbound", to_number="+12025550100", agent=agent, talk_seconds=12.5)
    odd = Incoming("s", event, body, "application/json", {"X-Odd": header}, received_at=1_780_000_000.25)
    plain = incoming("s", 9, "call.completed", 1)
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_store(Path(tmp) / "s.db")
        writer = StoreWriter(":unused:", hooks=[jobs_on_outcome])
        answers = []
        writer._resolve = lambda outcomes: answers.extend((ok, v) for _, ok, v in outcomes)  # type: ignore[method-assign]
        items = [("event", odd, None, None), ("event", plain, None, None)]
        writer._write_batch(conn, items[::-1] if neighbour_first else items)
        assert all(ok for ok, _ in answers) and writer.fallbacks == 0
        row = conn.execute("SELECT * FROM events WHERE dedupe_key = ?", (dedupe,)).fetchone()
        assert (row["body"], row["call_id"], row["received_at"]) == (body, call_id, 1_780_000_000.25)
        assert json.loads(row["headers_json"]) == {"X-Odd": header}
        assert CallEvent.from_dict(json.loads(row["event_json"])) == event
        call = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        assert (call["agent"], call["talk_seconds"], call["phone"]) == (agent, 12.5, "+12025550100")
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE call_id = ?", (call_id,)).fetchone()[0] == 1
        other = conn.execute("SELECT body FROM events WHERE dedupe_key = ?", (plain.event.dedupe_key,)).fetchone()
        assert other["body"] == plain.body
        # and the dedupe lookup finds it again, NUL or not
        answers.clear()
        writer._write_batch(conn, [("event", odd, None, None)])
        assert answers[0][1].duplicate
        conn.close()


# --- storage faults (issue 9, items 4 and 5) ------------------------------------------------


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_locked_store_fails_a_whole_batch_at_once_and_keeps_its_counters(tmp_path):
    """Another process holds the write lock: the batch fails after one busy timeout, not one per
    item; its counters are kept and written once the lock is gone."""
    import time

    from connector.store.faults import StorageUnavailable
    from tests.store_faults import write_lock_held

    db = tmp_path / "s.db"
    conn = open_write_connection(str(db), busy_timeout_ms=300)
    writer = StoreWriter(":unused:", hooks=[jobs_on_outcome])
    answers = []
    writer._resolve = lambda outcomes: answers.extend((ok, v) for _, ok, v in outcomes)  # type: ignore[method-assign]
    events = [("event", incoming("a", i, "call.completed", i), None, None) for i in range(40)]
    counters = [("count", "rejected:bad_signature", 2, 1_780_000_000.0)]
    with write_lock_held(db):
        started = time.monotonic()
        writer._write_batch(conn, counters + events)
        elapsed = time.monotonic() - started
        assert elapsed < 4, f"{elapsed:.1f} s: items were retried one by one (40 x 0.3 s busy timeout)"
        assert writer.fallbacks == 0 and len(answers) == 40
        assert all(not ok and isinstance(v, StorageUnavailable) for ok, v in answers)
        assert "locked" in writer.last_error
        assert writer.held_counts == Counter({(1_779_998_400, "rejected:bad_signature"): 2})
    writer._write_batch(conn, [])  # what the writer thread does when the retry interval passes
    assert writer.held_counts == Counter() and writer.last_error is None
    assert [tuple(r) for r in conn.execute("SELECT name, n FROM stats_hourly")] == [("rejected:bad_signature", 2)]
    conn.close()


def test_one_bad_item_is_still_retried_alone(tmp_path):
    """An error about one item (a UNIQUE key taken behind the writer's back) is not a storage
    failure: the batch is written item by item and only that item fails."""
    conn = open_store(tmp_path / "s.db")
    writer = StoreWriter(":unused:")
    answers = []
    writer._resolve = lambda outcomes: answers.extend((ok, v) for _, ok, v in outcomes)  # type: ignore[method-assign]
    items = [("event", incoming("a", i, "call.completed", i), None, None) for i in range(3)]
    taken = items[1][1]
    conn.execute("INSERT INTO events (source, dedupe_key, received_at, event_type, body) VALUES (?, ?, 0, 'x', x'')",
                 (taken.source, taken.event.dedupe_key))
    original = ingest.lookup
    ingest.lookup = lambda c, keys, calls: original(c, [k for k in keys if k[1] != taken.event.dedupe_key], calls)
    try:
        writer._write_batch(conn, items)
    finally:
        ingest.lookup = original
    assert [ok for ok, _ in answers] == [True, False, True] and writer.fallbacks == 1
    assert writer.last_error is None  # not a storage failure


class Fatal(BaseException):
    """Not an Exception: what used to end the writer thread."""


def test_the_writer_thread_survives_anything(tmp_path):
    writer = StoreWriter(str(tmp_path / "s.db"))
    writer.start()
    try:
        def explode(conn):
            raise Fatal("boom")

        try:
            writer.execute_sync(explode, timeout=5)
        except Exception as exc:  # noqa: BLE001 - the caller gets an error, the thread goes on
            assert "boom" in str(exc)
        else:
            raise AssertionError("the failure was not reported")
        writer.count("weird", n=None)  # a malformed counter: dropped with a log line
        writer.count("fine", 3, at=1_780_000_000.0)
        assert writer.execute_sync(lambda c: c.execute("SELECT 41 + 1").fetchone()[0], timeout=5) == 42
        assert writer.alive
        assert writer.execute_sync(lambda c: c.execute("SELECT n FROM stats_hourly WHERE name = 'fine'").fetchone()[0],
                                   timeout=5) == 3
    finally:
        writer.stop()


def test_counters_kept_after_a_failure_are_written_without_new_traffic(tmp_path):
    from tests.store_faults import write_lock_held

    db = tmp_path / "s.db"
    writer = StoreWriter(str(db), busy_timeout_ms=200)
    writer.start()
    try:
        with write_lock_held(db):
            writer.count("rejected:storage_error", 5)
            wait_for(lambda: writer.last_error, what="the write to fail")
            assert sum(writer.held_counts.values()) == 5
        check = sqlite3.connect(db)
        wait_for(lambda: check.execute("SELECT SUM(n) FROM stats_hourly WHERE name = 'rejected:storage_error'")
                 .fetchone()[0] == 5, what="kept counters to be written")
        check.close()
        assert writer.last_error is None and writer.alive
    finally:
        writer.stop()
