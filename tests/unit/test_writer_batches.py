"""The writer on SQLite: values SQLite must give back exactly, and a store another process has locked
(the same behaviour on both backends is in tests/store/test_writer.py)."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.store.db import dicts
from connector.store.writer import Count, StoreWriter, open_write_db
from connector.store.db import StoreTarget
from tests.store.test_writer import Answers, incoming


def open_store(path: Path):
    return open_write_db(StoreTarget.sqlite(path))


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None)
@given(body=st.binary(min_size=1, max_size=48), call_id=TEXT, agent=st.one_of(st.none(), TEXT),
       dedupe=TEXT, header=TEXT, neighbour_first=st.booleans())
def test_every_value_is_stored_exactly(body, call_id, agent, dedupe, header, neighbour_first):
    """Bytes that are not UTF-8 and NUL characters come back exactly, in the event's own row, its call
    and its neighbours in the batch."""
    from connector.ingest import Incoming
    from connector.model import CallEvent

    event = CallEvent("unlimcall", "call.completed", dedupe, call_id=call_id, status="completed",
                      direction="outbound", to_number="+12025550100", agent=agent, talk_seconds=12.5)
    odd = Incoming("s", event, body, "application/json", {"X-Odd": header}, received_at=1_780_000_000.25)
    plain = incoming("s", 9, "call.completed", 1)
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_store(Path(tmp) / "s.db")
        writer = StoreWriter(":unused:")
        answers = Answers()
        items = [answers.event(odd), answers.event(plain)]
        writer.write(conn, items[::-1] if neighbour_first else items)
        assert all(ok for ok, _ in answers) and writer.fallbacks == 0
        (row,) = dicts(conn.execute("SELECT * FROM events WHERE dedupe_key = ?", (dedupe,)))
        assert (row["body"], row["call_id"], row["received_at"]) == (body, call_id, 1_780_000_000.25)
        assert json.loads(row["headers_json"]) == {"X-Odd": header}
        assert CallEvent.from_dict(json.loads(row["event_json"])) == event
        (call,) = dicts(conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)))
        assert (call["agent"], call["talk_seconds"], call["phone"]) == (agent, 12.5, "+12025550100")
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE call_id = ?", (call_id,)).fetchone()[0] == 1
        other = conn.execute("SELECT body FROM events WHERE dedupe_key = ?", (plain.event.dedupe_key,)).fetchone()
        assert other[0] == plain.body
        # and the dedupe lookup finds it again, NUL or not
        answers.clear()
        writer.write(conn, [answers.event(odd)])
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
    conn = open_write_db(StoreTarget.sqlite(db), busy_timeout_ms=300)
    writer = StoreWriter(":unused:")
    answers = Answers()
    events = [answers.event(incoming("a", i, "call.completed", i)) for i in range(40)]
    counters = [Count("rejected:bad_signature", 2, 1_780_000_000.0)]
    with write_lock_held(db):
        started = time.monotonic()
        writer.write(conn, counters + events)
        elapsed = time.monotonic() - started
        assert elapsed < 4, f"{elapsed:.1f} s: items were retried one by one (40 x 0.3 s busy timeout)"
        assert writer.fallbacks == 0 and len(answers) == 40
        assert all(not ok and isinstance(v, StorageUnavailable) for ok, v in answers)
        assert "locked" in writer.last_error
        assert writer.held_counts == Counter({(1_779_998_400, "rejected:bad_signature"): 2})
    writer.write(conn, [])  # what the writer thread does when the retry interval passes
    assert writer.held_counts == Counter() and writer.last_error is None
    assert [tuple(r) for r in conn.execute("SELECT name, n FROM stats_hourly")] == [("rejected:bad_signature", 2)]
    conn.close()


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
