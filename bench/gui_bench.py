"""Window costs on a big store: dashboard refresh, event pages, idle CPU and memory of the running app.

A temp store (created with ``connector.store.schema.prepare``) is filled with
N realistic events (default 1,000,000: four sources and their event types,
~one third of the events finishing a call with an outcome, 60,000 phone
numbers, 30 days of history) plus their calls, sync jobs (done, a few dead and
pending), delivery attempts and hourly counters, written directly with
``executemany``.  Then, in this process, a real Service on that store answers:

- one dashboard refresh (``Facade.snapshot(fresh=True)``: metrics, verdict,
  the per-minute outcome and latency series), and
- event pages (``Facade.events_page``): the first page, a phone search, a
  call id search, filters by source / type / outcome, and a page deep in the
  history (keyset ``before_id``),

each timed as the median of several runs (target <= 30 ms).  Then the real app
(``python -m gui gui --data-dir ...``, the ``callsync`` launcher, offscreen) runs on the same store
as a subprocess: its CPU time over ``--idle-seconds`` (default 30) of idling
with the window open (target <= 1 % of one core) and its RSS (target
<= 200 MB).

    .venv/bin/python bench/run.py gui [--events 1000000] [--idle-seconds 30] [--keep] [--strict]
    .venv/bin/python bench/gui_bench.py --data-dir /tmp/x      # reuse a store generated with --keep
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connector.store import schema  # noqa: E402

QUERY_TARGET_MS = 30.0
CPU_TARGET_PERCENT = 1.0
RSS_TARGET_MB = 200.0
DAYS = 30
PHONES = 60_000

CONFIG = """\
# bench store
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.dialer]
kind = "hmac"

[sources.dialercx]
kind = "hmac"
signature_encoding = "base64"
timestamp_header = "X-Webhook-Timestamp"

[sources.std]
kind = "standard"

[sources.twilio]
kind = "twilio"
"""

# source -> (format, event types of one call in order; the last one carries the outcome)
LIFECYCLES = {
    "dialer": ("unlimcall", ["call.initiated", "call.answered", "call.completed"]),
    "dialercx": ("dialercx", ["call.started", "call.ended"]),
    "std": ("standard", ["call.ringing", "call.completed"]),
    "twilio": ("twilio", ["twilio.initiated", "twilio.ringing", "twilio.in-progress", "twilio.completed"]),
}
STATUS = {"call.initiated": "initiated", "call.answered": "answered", "call.started": "initiated",
          "call.ringing": "ringing", "twilio.initiated": "initiated", "twilio.ringing": "ringing",
          "twilio.in-progress": "answered"}
OUTCOMES = [("connected", "completed"), ("connected", "completed"), ("connected", "completed"),
            ("no_answer", "no-answer"), ("no_answer", "no-answer"), ("busy", "busy"), ("voicemail", "voicemail"),
            ("sale", "completed"), ("failed", "failed"), ("abandoned", "canceled")]
NON_CALL = [("dialercx", "agent.login"), ("dialercx", "lead.updated"), ("std", "agent.logout")]


def _phone(n: int) -> str:
    return f"+1{202 + n % 700:03d}{5550000 + n % 10_000:07d}"


def generate(db_path: Path, events: int, seed: int = 1) -> dict[str, int]:
    """Fill the store; returns counts of what was written."""
    schema.prepare(str(db_path))
    rng = random.Random(seed)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")  # a bulk load into a scratch file; WAL again afterwards
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MB: the indexes stay in memory while loading
    now = time.time()
    start = now - DAYS * 86400
    headers = json.dumps({"Content-Type": "application/json", "User-Agent": "bench-sender/1.0",
                          "X-Webhook-Signature": "[redacted]"}, sort_keys=True)
    event_rows, call_rows, job_rows, attempt_rows = [], [], [], []
    stats: dict[tuple[int, str], int] = {}

    def bump(at: float, name: str, n: int = 1) -> None:
        key = (int(at // 3600 * 3600), name)
        stats[key] = stats.get(key, 0) + n

    # Events arrive in time order: one timeline, calls interleave only within their few seconds.
    times = sorted(rng.uniform(start, now - 5) for _ in range(events))
    i = 0
    job_id = 0
    sources = list(LIFECYCLES)
    while i < len(times):
        at = times[i]
        if rng.random() < 0.02:
            source, event_type = rng.choice(NON_CALL)
            body = json.dumps({"event": event_type, "timestamp": at, "data": {"agent": "jsmith"}}).encode()
            event_rows.append((source, f"sha256:{uuid.uuid4().hex}", at, event_type, None, 0, None, None, None,
                               None, "application/json", headers, body, json.dumps({"event_type": event_type})))
            bump(at, "stored")
            i += 1
            continue
        source = rng.choice(sources)
        fmt, lifecycle = LIFECYCLES[source]
        steps = lifecycle[: max(1, min(len(lifecycle), len(times) - i))]
        call_id = ("CA" + uuid.uuid4().hex) if source == "twilio" else str(uuid.uuid4())
        phone = _phone(rng.randrange(PHONES))
        outcome, final_status = rng.choice(OUTCOMES)
        first_at = times[i]
        for n, event_type in enumerate(steps):
            at = times[i]
            last = n == len(steps) - 1 and len(steps) == len(lifecycle)
            status = final_status if last else STATUS.get(event_type, "initiated")
            # Formatted by hand: json.dumps would take most of the generation time.
            body = (f'{{"event":"{event_type}","call_uuid":"{call_id}","to":"{phone}","from":"+12025550148",'
                    f'"direction":"outbound","seat_id":"seat_07"}}').encode()
            event_json = (f'{{"format": "{fmt}", "event_type": "{event_type}", "call_id": "{call_id}", '
                          f'"status": "{status}", "to_number": "{phone}"}}')
            event_rows.append((source, f"{call_id}:{event_type}", at, event_type, call_id, 1, status,
                               outcome if last else None, phone, None, "application/json", headers, body, event_json))
            bump(at, "stored")
            i += 1
        ended = times[i - 1]
        call_rows.append((source, call_id, final_status if len(steps) == len(lifecycle) else "ringing",
                          outcome if len(steps) == len(lifecycle) else None, "outbound", "+12025550148", phone,
                          phone, len(steps), first_at, ended))
        if len(steps) == len(lifecycle):
            job_id += 1
            roll = rng.random()
            latency = rng.lognormvariate(-2.3, 0.6)  # ~100 ms median receipt -> CRM
            if roll < 0.0005:
                job_rows.append((job_id, source, call_id, "dead", 3, 3, None, None,
                                 "POST /contacts/x/notes: HTTP 422", ended, ended + 60, None))
                bump(ended, "dead")
                bump(ended, "sync_failed", 3)
            elif ended > now - 120 and roll < 0.5:
                job_rows.append((job_id, source, call_id, "pending", 0, 0, ended, None, None, ended, ended, None))
            else:
                job_rows.append((job_id, source, call_id, "done", 1, 0, None, None, None, ended, ended + latency,
                                 ended + latency))
                bump(ended + latency, "processed")
                if rng.random() < 0.01:  # keep the delivery log realistic without making it huge
                    for kind, method, path, code in (("lookup", "GET", "/contacts/search/duplicate", 200),
                                                     ("note", "POST", "/contacts/c1/notes", 201)):
                        attempt_rows.append((job_id, ended + latency / 2, kind, method, path, code, "{}",
                                             uuid.uuid4().hex, 40.0, None))

    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (source, dedupe_key, received_at, event_type, call_id, is_call, status, outcome, phone, "
        "occurred_at, content_type, headers_json, body, event_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        event_rows,
    )
    conn.executemany(
        "INSERT INTO calls (source, call_id, status, outcome, direction, from_number, to_number, phone, "
        "event_count, first_received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        call_rows,
    )
    conn.executemany(
        "INSERT INTO jobs (id, source, call_id, status, attempts, failures, next_attempt_at, lease_until, "
        "last_error, created_at, updated_at, done_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        job_rows,
    )
    conn.executemany(
        "INSERT INTO attempts (job_id, at, kind, method, path, status, response, trace_id, duration_ms, error) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        attempt_rows,
    )
    conn.executemany("INSERT INTO stats_hourly (hour, name, n) VALUES (?,?,?)",
                     [(hour, name, n) for (hour, name), n in stats.items()])
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")  # no ANALYZE: a real store has no statistics either
    conn.close()
    return {"events": len(event_rows), "calls": len(call_rows), "jobs": len(job_rows)}


async def time_queries(data_dir: Path, repeat: int) -> list[tuple[str, float, float]]:
    """(what, first run ms, median ms) for the dashboard refresh and the event pages."""
    import keyring
    from keyring.backends import null

    from connector.app import Service
    from connector.config import load_config
    from connector.facade import Facade

    keyring.set_keyring(null.Keyring())  # never touch a real keyring; no secrets are needed here

    service = Service(load_config(data_dir))
    await service.start()
    facade = Facade(service)
    try:
        sample = await service.reader.run(
            lambda c: c.execute("SELECT phone, call_id FROM events WHERE phone IS NOT NULL ORDER BY id DESC "
                                "LIMIT 1 OFFSET 5000").fetchone()
        )
        middle = await service.reader.run(lambda c: c.execute("SELECT MAX(id) / 2 FROM events").fetchone()[0])
        phone, call_id = sample[0], sample[1]
        national = phone[2:5] + "-" + phone[5:8] + "-" + phone[8:]  # searched as people type it
        cases = [
            ("dashboard refresh (snapshot)", lambda: facade.snapshot(fresh=True)),
            ("events: first page", lambda: facade.events_page()),
            (f"events: phone {national}", lambda: facade.events_page(national)),
            ("events: call id", lambda: facade.events_page(call_id)),
            ("events: source = twilio", lambda: facade.events_page(source="twilio")),
            ("events: type = call.ended", lambda: facade.events_page(event_type="call.ended")),
            ("events: outcome = sale", lambda: facade.events_page(outcome="sale")),
            ("events: source + outcome", lambda: facade.events_page(source="dialercx", outcome="busy")),
            ("events: page deep in history", lambda: facade.events_page(before_id=middle)),
            ("events: filter lists (event types)", lambda: facade.event_types()),
            ("calls: first page", lambda: facade.calls_page()),
            ("dead letters", lambda: facade.dead_letters()),
        ]
        results = []
        for name, make in cases:
            runs = []
            for _ in range(repeat):
                started = time.perf_counter()
                await make()
                runs.append((time.perf_counter() - started) * 1000)
            results.append((name, runs[0], statistics.median(runs)))
        return results
    finally:
        await service.stop()


def idle_app(data_dir: Path, seconds: float) -> tuple[float, float, str]:
    """Run the real app offscreen; returns (CPU % of one core while idle, RSS MB, shutdown note)."""
    import psutil

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSYNC_")} | {
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",  # never touch a real keyring
    }
    proc = subprocess.Popen([sys.executable, "-m", "gui", "gui", "--data-dir", str(data_dir)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if re.search(r"hooks on http://", line) or not line:
                break
        time.sleep(8.0)  # first loads of the dashboard and tables are not idling
        process = psutil.Process(proc.pid)
        before = process.cpu_times()
        started = time.monotonic()
        time.sleep(seconds)
        after = process.cpu_times()
        elapsed = time.monotonic() - started
        rss = process.memory_info().rss / 1e6
        cpu = ((after.user - before.user) + (after.system - before.system)) / elapsed * 100
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        note = "clean exit" if code == 0 else f"exit code {code}"
        return cpu, rss, note
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, help="reuse a generated store (implies --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the generated store and print its path")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="callsync-gui-bench-"))
    try:
        db = data_dir / "callsync.db"
        if not db.exists():
            (data_dir / "config.toml").write_text(CONFIG, encoding="utf-8")
            started = time.perf_counter()
            counts = generate(db, args.events)
            print(f"store: {counts['events']:,} events, {counts['calls']:,} calls, {counts['jobs']:,} jobs "
                  f"written in {time.perf_counter() - started:.1f} s ({db.stat().st_size / 1e6:.0f} MB)", flush=True)
        else:
            print(f"store: reusing {db} ({db.stat().st_size / 1e6:.0f} MB)")

        missed = 0
        title = f"query (median of {args.repeat})"
        print(f"\n{title:<42} {'first':>9} {'median':>9}  target {QUERY_TARGET_MS:.0f} ms")
        for name, first, median in asyncio.run(time_queries(data_dir, args.repeat)):
            ok = median <= QUERY_TARGET_MS
            missed += not ok
            print(f"{name:<42} {first:>7.1f}ms {median:>7.1f}ms  {'ok' if ok else 'MISSED'}", flush=True)

        if args.idle_seconds > 0:
            cpu, rss, note = idle_app(data_dir, args.idle_seconds)
            cpu_ok, rss_ok = cpu <= CPU_TARGET_PERCENT, rss <= RSS_TARGET_MB
            missed += (not cpu_ok) + (not rss_ok)
            verdict = {True: "ok", False: "MISSED"}
            print(f"\nrunning app (offscreen, window open, {args.idle_seconds:.0f} s idle): "
                  f"CPU {cpu:.2f} % of one core (target <= {CPU_TARGET_PERCENT:.0f} %: {verdict[cpu_ok]}), "
                  f"RSS {rss:.0f} MB (target <= {RSS_TARGET_MB:.0f} MB: {verdict[rss_ok]}), {note}")
        return 1 if args.strict and missed else 0
    finally:
        if args.keep or args.data_dir:
            print(f"store kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
