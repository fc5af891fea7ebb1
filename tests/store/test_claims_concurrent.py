"""Claims from several connections at once (as from several `serve --workers` processes): no job is
handed out twice, a contact never has two jobs out at a time, and each contact's jobs go out in the
order its calls ended.  Threads with a connection each, against a real SQLite file and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time

from connector.store import jobs, migrations
from connector.store.db import open_db
from connector.sync import outbox

NOW = 1_800_000_000.0
CLAIMERS = 4


def seed(conn) -> dict[str, list[str]]:
    """Contacts with several calls each (ends out of arrival order) and contacts with one call."""
    expected: dict[str, list[str]] = {}
    rng = random.Random(5)
    rows = []
    for c in range(6):
        phone = f"+1202555{c:04d}"
        minutes = rng.sample(range(60), 6)
        for k, minute in enumerate(minutes):
            rows.append((f"c{c}-{k}", phone, f"2026-06-04T10:{minute:02d}:00Z"))
        expected[phone] = [f"c{c}-{k}" for k, _ in sorted(enumerate(minutes), key=lambda p: p[1])]
    for s in range(12):
        phone = f"+1202556{s:04d}"
        rows.append((f"s{s}", phone, "2026-06-04T09:00:00Z"))
        expected[phone] = [f"s{s}"]
    rng.shuffle(rows)
    with conn.transaction():
        for call_id, phone, ended in rows:
            conn.execute("INSERT INTO calls (source, call_id, status, outcome, to_number, phone, ended_at, updated_at) "
                         "VALUES ('dialer', ?, 'completed', 'connected', ?, ?, ?, ?)", (call_id, phone, phone, ended, NOW))
            conn.execute("INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, "
                         "updated_at) VALUES ('dialer', ?, 'pending', 0, 0, ?, ?, ?)", (call_id, NOW - 10, NOW - 10, NOW))
    return expected


def test_claimers_at_once_never_share_a_job_or_a_contact_and_keep_call_order(target):
    setup = open_db(target)
    migrations.migrate(setup)
    expected = seed(setup)
    total = sum(len(v) for v in expected.values())
    lock = threading.Lock()
    out: dict[str, int] = {}  # phone -> job id held right now
    claimed: list[str] = []
    order: dict[str, list[str]] = {}
    problems: list[str] = []
    start = threading.Barrier(CLAIMERS)

    def claimer(seed_: int) -> None:
        rng = random.Random(seed_)
        conn = open_db(target)
        try:
            start.wait()
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 3.0:
                with conn.transaction():
                    job = outbox.claim(conn, NOW, 600.0)
                if job is None:
                    time.sleep(0.002)
                    continue
                idle_since = time.monotonic()
                with lock:
                    if job["phone"] in out:
                        problems.append(f"{job['call_id']} out while job {out[job['phone']]} of its contact is")
                    out[job["phone"]] = job["id"]
                    claimed.append(job["call_id"])
                    order.setdefault(job["phone"], []).append(job["call_id"])
                time.sleep(rng.uniform(0, 0.004))  # the CRM requests
                with conn.transaction():
                    with lock:  # handed back before the commit makes the next job of the contact claimable
                        del out[job["phone"]]
                    jobs.complete(conn, job["id"], NOW)
        except BaseException as exc:  # noqa: BLE001
            problems.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    left = setup.execute("SELECT COUNT(*) FROM jobs WHERE status != 'done'").fetchone()[0]
    setup.close()
    assert problems == []
    assert sorted(claimed) == sorted(c for calls in expected.values() for c in calls)  # each once
    assert len(claimed) == total and left == 0
    assert order == expected
