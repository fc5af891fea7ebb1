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
