"""The outbox's per-contact order, in SQL on a real store (SQLite file, PostgreSQL database): a contact's
jobs are handed out one at a time, in the order their calls ended, also to two connections claiming from
the same store (as two processes would)."""

from __future__ import annotations

import pytest

from connector.store import contacts, jobs, migrations
from connector.store.db import open_db
from connector.sync import outbox

NOW = 1_800_000_000.0
A, B = "+12025550601", "+12025550602"


@pytest.fixture
def store(target):
    conn = open_db(target)
    migrations.migrate(conn)
    yield conn, target
    conn.close()


def add_call(conn, call_id: str, phone: str, ended_at: str | None, *, due: float = NOW - 10, **call) -> None:
    conn.execute(
        "INSERT INTO calls (source, call_id, status, outcome, direction, to_number, phone, ended_at, updated_at) "
        "VALUES ('dialer', ?, 'completed', 'connected', 'outbound', ?, ?, ?, ?)",
        (call_id, phone, phone, ended_at, NOW),
    )
    conn.execute(
        "INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at) "
        "VALUES ('dialer', ?, 'pending', 0, 0, ?, ?, ?)",
        (call_id, due, NOW - 100, NOW),
    )


def claim(conn, now: float = NOW, lease: float = 60.0):
    with conn.transaction():
        job = outbox.claim(conn, now, lease)
    return job and job["call_id"]


def finish(conn, call_id: str, how: str = "done") -> None:
    (job_id,) = conn.execute("SELECT id FROM jobs WHERE call_id = ?", (call_id,)).fetchone()
    if how == "done":
        jobs.complete(conn, job_id, NOW)
    elif how == "retry":
        jobs.retry_later(conn, job_id, NOW + 30, "HTTP 500", NOW, failure=True)
    else:
        jobs.kill(conn, job_id, "HTTP 422", NOW)


def test_a_contact_gets_its_calls_in_end_order_one_at_a_time(store):
    conn, _ = store
    # received (and due) newest first; the contact's calls must still go out in the order they ended
    add_call(conn, "a3", A, "2026-06-04T10:03:00Z", due=NOW - 30)
    add_call(conn, "a1", A, "2026-06-04T10:01:00.500Z", due=NOW - 20)  # milliseconds sort by time, not text
    add_call(conn, "a2", A, "2026-06-04T10:01:01Z", due=NOW - 10)
    add_call(conn, "b1", B, "2026-06-04T10:02:00Z", due=NOW - 5)
    assert claim(conn) == "a1"
    assert claim(conn) == "b1"  # another contact is not held up
    assert claim(conn) is None  # a2 waits while a1 is leased, a3 behind a2
    finish(conn, "a1", "retry")
    assert claim(conn) is None  # a1 is retrying later: the contact's later calls wait behind it
    assert claim(conn, now=NOW + 31) == "a1"
    finish(conn, "a1")
    assert claim(conn) == "a2"
    finish(conn, "a2", "dead")  # a dead letter no longer holds the contact
    assert claim(conn) == "a3"


def test_an_expired_lease_is_taken_again_before_later_calls(store):
    conn, _ = store
    add_call(conn, "a1", A, "2026-06-04T10:01:00Z")
    add_call(conn, "a2", A, "2026-06-04T10:02:00Z")
    conn.execute("INSERT INTO contacts (phone, contact_id, tags_json, fields_json, checked_at) "
                 "VALUES (?, 'c1', '[]', '{}', ?)", (A, NOW))

    def checked_at():
        return conn.execute("SELECT checked_at FROM contacts WHERE phone = ?", (A,)).fetchone()[0]

    assert claim(conn, lease=5) == "a1"
    assert claim(conn, now=NOW + 4) is None
    assert checked_at() == NOW
    assert claim(conn, now=NOW + 6) == "a1"  # its worker died: taken again, still first
    assert checked_at() is None  # it may have died mid-write: the contact is read again


def test_a_late_older_call_waits_while_a_newer_one_of_its_contact_runs(store):
    conn, _ = store
    add_call(conn, "a2", A, "2026-06-04T10:02:00Z")
    assert claim(conn) == "a2"
    add_call(conn, "a1", A, "2026-06-04T10:01:00Z")  # ended earlier, arrived later
    assert claim(conn) is None
    finish(conn, "a2")
    assert claim(conn) == "a1"


def test_two_connections_never_hold_two_calls_of_one_contact(store):
    conn, target = store
    other = open_db(target)  # as a second process would
    try:
        for i in range(6):
            add_call(conn, f"a{i}", A, f"2026-06-04T10:0{i}:00Z")
            add_call(conn, f"b{i}", B, f"2026-06-04T10:0{i}:00Z")
        order = []
        for _ in range(6):
            held = [claim(conn), claim(other)]
            assert sorted(c[0] for c in held) == ["a", "b"], held
            assert claim(conn) is None and claim(other) is None
            for call_id in held:
                finish(conn, call_id)
            order += held
        assert [c for c in order if c[0] == "a"] == [f"a{i}" for i in range(6)]
    finally:
        other.close()


@pytest.mark.parametrize(
    "call, received, expected",
    [
        ({"ended_at": "2026-06-04T10:00:00Z", "last_event_at": "2026-06-04T10:05:00Z"}, 0.0, 1780567200.0),
        ({"ended_at": None, "last_event_at": "2026-06-04T10:05:00.250Z"}, 0.0, 1780567500.25),
        ({"ended_at": "garbage", "initiated_at": "2026-06-04T10:00:00+02:00"}, 0.0, 1780560000.0),
        ({}, 123.0, 123.0),
        (None, 456.0, 456.0),
    ],
)
def test_call_end_prefers_the_end_time_then_the_last_event_then_receipt(call, received, expected):
    assert outbox.call_end(call, received) == expected


@pytest.mark.parametrize(
    "applied, mine, stale",
    [
        (None, (10.0, 5), False),  # first call of the contact
        ((10.0, 5), (10.0, 5), False),  # the same call again (a replay): re-applied
        ((10.0, 5), (10.0, 6), False),  # same end time, later job: after it
        ((10.0, 5), (10.0, 4), True),
        ((10.0, 5), (9.0, 9), True),  # ended earlier: stale whatever its id
        ((10.0, 5), (11.0, 1), False),
    ],
)
def test_take_turn_marks_the_newest_call_and_refuses_older_ones(store, applied, mine, stale):
    conn, _ = store
    if applied:
        assert contacts.take_turn(conn, A, applied[0], applied[1], NOW) is None
    newer = contacts.take_turn(conn, A, mine[0], mine[1], NOW)
    assert (newer is not None) == stale
    if stale:
        assert newer == applied[1]
        assert tuple(conn.execute("SELECT call_end, job_id FROM contact_applied").fetchone()) == applied
