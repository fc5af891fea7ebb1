"""Several writers on one store at once (`serve --workers N` on PostgreSQL: a writer per process):
events of the same calls and the same events arriving at different writers give exactly what one
writer gives - every event stored once, each call's record folded from all its events, one job per
finished call, counters adding up.  Real connections, one per writer thread, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading

from connector.store.db import StoreTarget, dicts, open_db
from connector.store.writer import StoreWriter, open_write_db
from tests.store.test_writer import STEPS, Answers, incoming

WRITERS = 4
CALLS = 6
# What depends on which writer got there first (times of arrival, ids), not on what was stored.
ARRIVAL = {"rowid", "first_received_at", "updated_at"}


def state(db) -> dict:
    return {
        "events": sorted(tuple(r) for r in db.execute(
            "SELECT source, dedupe_key, event_type, call_id, status, phone FROM events")),
        "calls": sorted(tuple((k, v) for k, v in row.items() if k not in ARRIVAL)
                        for row in dicts(db.execute("SELECT * FROM calls"))),
        "jobs": sorted(tuple(r) for r in db.execute("SELECT source, call_id, status FROM jobs")),
        "stored": db.execute("SELECT COALESCE(SUM(n), 0) FROM stats_hourly WHERE name = 'stored'").fetchone()[0],
    }


def test_writers_at_once_store_what_one_writer_stores(target, tmp_path):
    events = [("a", call, step) for call in range(CALLS) for step in STEPS]
    # Each writer gets most of the events, shuffled: the same event often reaches two writers at once.
    rng = random.Random(11)
    shares = [rng.sample(events, len(events) * 3 // 4) for _ in range(WRITERS)]
    shares[0] += [e for e in events if not any(e in s for s in shares)]
    n_of = {e: i for i, e in enumerate(events)}
    problems: list[str] = []
    setup = open_write_db(target)  # the schema first: the writers then start together
    setup.close()
    start = threading.Barrier(WRITERS, timeout=30)

    def writer(mine: list[tuple[str, int, str]], seed: int) -> None:
        rng = random.Random(seed)
        db = open_write_db(target)
        w, answers = StoreWriter(":unused:"), Answers()
        try:
            start.wait()
            while mine:
                size = rng.randint(1, 6)
                batch, mine[:] = mine[:size], mine[size:]
                w.write(db, [answers.event(incoming(s, c, st, n_of[(s, c, st)])) for s, c, st in batch])
            problems.extend(repr(value) for ok, value in answers if not ok)
        except BaseException as exc:  # noqa: BLE001
            problems.append(repr(exc))
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(share, i)) for i, share in enumerate(shares)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert problems == []
    db = open_db(target)
    got = state(db)
    db.close()

    # The same events through one writer, one at a time, in a store of its own.
    one = open_write_db(StoreTarget.sqlite(tmp_path / "alone.db"))  # the fold does not depend on the engine
    w, answers = StoreWriter(":unused:"), Answers()
    for s, c, st in events:
        w.write(one, [answers.event(incoming(s, c, st, n_of[(s, c, st)]))])
    expected = state(one)
    one.close()
    assert got["events"] == expected["events"]
    assert got["calls"] == expected["calls"]
    assert got["jobs"] == expected["jobs"]
    assert got["stored"] == expected["stored"] == len(events)
