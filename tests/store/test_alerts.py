"""The automations' SQL on a real store (SQLite file and PostgreSQL database): alerts stored once under
their id with one job per sink, thresholds and the mark saved, alert jobs claimed apart from CRM jobs,
and the rebuild queries bounded to each window's size."""

from __future__ import annotations

import pytest

from connector.store import alerts, jobs, migrations
from connector.store.db import open_db

NOW = 1_800_000_000.0


@pytest.fixture
def db(target):
    conn = open_db(target)
    migrations.migrate(conn)
    yield conn
    conn.close()


def alert(alert_id: str, created_at: float = NOW, **extra) -> dict:
    return {"id": alert_id, "recipe": "abandon", "subject": "Q1", "level": "act", "created_at": created_at,
            "message": f"alert {alert_id}", "fields": {"campaign": "Q1", "rate": 3.2},
            "evidence": {"event_ids": [7, 6], "calls": 500}, "event_id": 7} | extra


def test_an_alert_is_stored_once_with_one_job_per_sink(db):
    sinks = [("action", "lower_pacing"), ("notify", "abc123"), ("webhook", "")]
    with db.transaction():
        assert alerts.save(db, [alert("al_1")], [sinks], [("abandon", "Q1", "act", False, 1)], 42, NOW) == ["al_1"]
    with db.transaction():  # the same crossing evaluated again (a restart): nothing new
        assert alerts.save(db, [alert("al_1"), alert("al_2", NOW + 1)], [sinks, sinks[:1]], [], 43, NOW) == ["al_2"]
    rows = db.execute("SELECT call_id, kind, status FROM jobs ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("al_1/action:lower_pacing", "action", "pending"),
                                        ("al_1/notify:abc123", "notify", "pending"), ("al_1/webhook", "webhook", "pending"),
                                        ("al_2/action:lower_pacing", "action", "pending")]
    assert alerts.load_trips(db) == [("abandon", "Q1", "act", False, 1)]
    assert alerts.mark(db) == 43
    listed = alerts.list_alerts(db)
    assert [a["id"] for a in listed] == ["al_2", "al_1"] and listed[1]["evidence"]["event_ids"] == [7, 6]
    assert [a["id"] for a in alerts.list_alerts(db, since=NOW + 0.5)] == ["al_2"]
    assert len(alerts.get_alert(db, "al_1")["deliveries"]) == 3
    with db.transaction():
        assert alerts.acknowledge(db, ["al_1", "nope"], NOW) == 1
    assert alerts.unacknowledged(db) == 1


def test_alert_jobs_and_crm_jobs_never_take_each_other(db):
    with db.transaction():
        db.execute("INSERT INTO calls (source, call_id, status, outcome, to_number, phone, updated_at) "
                   "VALUES ('dialer', 'c1', 'completed', 'connected', '+12025550100', '+12025550100', ?)", (NOW,))
        jobs.queue(db, [("dialer", "c1", NOW - 5)])
        alerts.save(db, [alert("al_1")], [[("notify", "abc")]], [], None, NOW - 5)
    with db.transaction():
        jobs.set_keys(db, [("+12025550100", NOW, int(i)) for i, *_ in jobs.unkeyed(db)])
        crm = jobs.claim(db, NOW, 60)
        sink = alerts.claim(db, NOW, 60)
        assert alerts.claim(db, NOW, 60) is None and jobs.claim(db, NOW, 60) is None
    assert crm["call_id"] == "c1" and crm["kind"] == "crm"
    assert sink["call_id"] == "al_1/notify:abc" and sink["sink"] == "notify:abc" and sink["alert"]["id"] == "al_1"
    with db.transaction():  # its worker died: the lease expires and it is taken again
        again = alerts.claim(db, NOW + 61, 60)
        assert again["id"] == sink["id"] and again["attempts"] == 2
        alerts.finish(db, sink["id"], NOW + 62, (NOW + 62, "notify", "APPRISE", "json://x", None, None, 5.0, "503"),
                      outcome="retry", retry_at=NOW + 70, error="503")
    assert alerts.next_due(db, NOW + 62) == NOW + 70
    with db.transaction():
        assert alerts.claim(db, NOW + 65, 60) is None
        alerts.finish(db, alerts.claim(db, NOW + 70, 60)["id"], NOW + 71, None, outcome="dead", error="gave up")
    assert [d["call_id"] for d in jobs.list_dead(db)] == ["al_1/notify:abc"]
    assert alerts.delivery_counts(db) == {"dead": 1}


def add_finished(db, n: int, did: str, campaign: str, outcome: str = "connected") -> None:
    db.execute("INSERT INTO calls (source, call_id, status, outcome, direction, from_number, did, campaign, updated_at) "
               "VALUES ('dialer', ?, 'completed', ?, 'outbound', ?, ?, ?, ?)",
               (f"c{n}", outcome, did, None, campaign, NOW + n))
    db.execute("INSERT INTO events (source, dedupe_key, received_at, event_type, call_id, is_call, outcome, body) "
               "VALUES ('dialer', ?, ?, 'call.completed', ?, 1, ?, ?)", (f"k{n}", NOW + n, f"c{n}", outcome, b"{}"))


def test_the_rebuild_reads_the_newest_finished_calls_in_finishing_order(db, monkeypatch):
    with db.transaction():
        for n in range(30):
            add_finished(db, n, "D1" if n % 3 else "D2", "A" if n < 20 else "B")
        db.execute("INSERT INTO calls (source, call_id, status, updated_at) VALUES ('dialer', 'open', 'ringing', ?)",
                   (NOW + 99,))  # not finished: not in a window
    rows = alerts.recent_finished(db)
    assert [r["call_id"] for r in rows] == [f"c{n}" for n in range(30)]
    assert [r["event_id"] for r in rows] == sorted(r["event_id"] for r in rows) and rows[0]["from_number"] == "D2"
    monkeypatch.setattr(alerts, "REBUILD_CALLS", 5)
    assert [r["call_id"] for r in alerts.recent_finished(db, 5)] == [f"c{n}" for n in range(25, 30)]
