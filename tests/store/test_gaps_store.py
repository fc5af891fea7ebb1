"""The heartbeat, reconciliation state and reconciled calls (migration 8) on SQLite and PostgreSQL."""

from __future__ import annotations

from connector.store import gaps
from connector.store.migrations import migrate


def test_stretches_state_and_reconciled_calls(raw_db):
    db = raw_db
    migrate(db)
    with db.transaction():
        gaps.begin_stretch(db, 100.0)
        gaps.beat(db, 100.0, 105.0)
        gaps.beat(db, 100.0, 103.0)  # an older beat never moves it back
        gaps.begin_stretch(db, 500.0)
        gaps.begin_stretch(db, 500.0)  # twice: one stretch
    assert gaps.stretches(db, 0) == [(100.0, 105.0), (500.0, 500.0)]
    assert gaps.stretches(db, 200) == [(500.0, 500.0)]
    assert gaps.last_stretch_before(db, 500.0) == (100.0, 105.0)

    with db.transaction():
        gaps.save_run(db, "twilio", since=50.0, at=60.0, error=None)
        gaps.save_run(db, "twilio", since=None, at=70.0, error="Twilio answered 503")  # a failure keeps `since`
    state = gaps.reconcile_state(db, "twilio")
    assert (state["since"], state["last_run"], state["last_ok"], state["last_error"]) == (
        50.0, 70.0, 60.0, "Twilio answered 503")
    assert [s["source"] for s in gaps.all_reconcile_states(db)] == ["twilio"]

    with db.transaction():
        gaps.record_reconciled(db, "twilio", "CA1", "fill", 120.0, 600.0)
        gaps.record_reconciled(db, "twilio", "CA1", "complete", 130.0, 601.0)  # once per call
        gaps.record_reconciled(db, "twilio", "CA2", "complete", 400.0, 602.0)
    assert sorted(gaps.reconciled_between(db, 100.0, 450.0)) == [("twilio", "complete", 400.0),
                                                                  ("twilio", "fill", 120.0)]
    assert gaps.reconciled_between(db, 200.0, 300.0) == []


def test_what_reconciliation_reads_of_the_calls(raw_db):
    db = raw_db
    migrate(db)
    with db.transaction():
        for call_id, status, updated, test in (("CA1", "completed", 1.0, 0), ("CA2", "answered", 2.0, 0),
                                               ("CA3", None, 3.0, 0), ("CA4", "ringing", 4.0, 1)):
            db.execute("INSERT INTO calls (source, call_id, status, updated_at, test) VALUES (?, ?, ?, ?, ?)",
                       ("twilio", call_id, status, updated, test))
        db.execute("INSERT INTO calls (source, call_id, status, updated_at) VALUES (?, ?, ?, ?)",
                   ("other", "CA2", "completed", 5.0))
    assert gaps.call_statuses(db, "twilio", ["CA1", "CA2", "CA3", "CA9"]) == {"CA1": "completed", "CA2": "answered",
                                                                          "CA3": None}
    assert [r["call_id"] for r in gaps.open_calls(db, "twilio")] == ["CA2", "CA3"]  # not finished, not tests
