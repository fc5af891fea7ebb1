"""Queries whose SQL differs per engine give the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

from connector.store import events, migrations
from connector.store.db import open_db

T0 = 1_780_000_020.0  # a whole minute


def add_event(db, n: int, received_at: float, outcome: str | None, event_json: str = "{}") -> None:
    db.execute("INSERT INTO events (source, dedupe_key, received_at, event_type, outcome, body, event_json) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", ("s", f"k{n}", received_at, "call.completed", outcome, b"{}", event_json))


def test_events_per_minute_count_each_event_in_the_minute_it_arrived(target):
    db = open_db(target)
    try:
        migrations.migrate(db)
        with db.transaction():
            add_event(db, 1, T0, "connected")
            add_event(db, 2, T0 + 59.9, "connected")  # still the first minute (rounding would move it on)
            add_event(db, 3, T0 + 60, "connected")
            add_event(db, 4, T0 + 61, None)
            add_event(db, 5, T0 + 62, "connected", '{"test": true}')  # a test event is not traffic
        assert sorted(events.outcome_minutes(db, T0)) == [
            (int(T0), "connected", 2), (int(T0) + 60, "", 1), (int(T0) + 60, "connected", 1)]
        assert events.sent_as_tests(db, [1, 2, 3, 4, 5]) == {5}
    finally:
        db.close()
