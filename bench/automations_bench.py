"""Automations: what evaluating every event costs, with a big store and through the receiver.

1. **Evaluation per event with 1,000,000 calls stored.**  A temp store gets N finished calls
   (default 1,000,000; 200 DIDs over 10 campaigns, realistic outcomes and SIP codes, one finishing
   event each), written directly with ``executemany``.  The automations start on it as in
   ``callsync serve`` (real writer and reader): the start-up rebuild (one bounded query per recipe)
   is timed, then ``--events`` new stored events (what the writer hands over after each commit, in
   batches of 64) go through the engine with every recipe on: the mean cost is printed in µs per
   event, next to the same measurement on an empty store (it must not depend on the store's size).
2. **Receiver throughput, all recipes on / all off.**  ``callsync serve`` on a fresh data dir, once
   with every ``[automations.*]`` enabled and once with every one disabled, loaded by wrk with the
   receiver benchmark's pool of signed call.completed bodies (``--connections``, ``--duration``
   after a warm-up), alternating ``--repeat`` times; the ratio of the median req/s is printed.
   Target >= 0.9.

    .venv/bin/python bench/run.py automations
    .venv/bin/python bench/automations_bench.py --calls 200000 --events 50000 --repeat 1 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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
from pathlib import Path
from types import SimpleNamespace

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _path in (str(ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from connector.model import CallEvent, CallRecord  # noqa: E402

TARGET_RATIO = 0.9
RECIPES = ("did_burn", "abandon", "caller_id", "voicemail", "carrier", "pause")
OUTCOMES = [("connected", "completed", 200)] * 30 + [("sale", "completed", 200)] * 5 + \
    [("no_answer", "no-answer", 480)] * 35 + [("busy", "busy", 486)] * 6 + [("voicemail", "voicemail", 200)] * 12 + \
    [("abandoned", "completed", 200)] * 2 + [("failed", "failed", 503)] * 10
READY = re.compile(r"hooks on http://127\.0\.0\.1:(\d+)")


def did(n: int) -> str:
    return f"+1202555{n % 200:04d}"


def generate(db_path: Path, calls: int, seed: int = 1) -> None:
    from connector.store import schema

    schema.prepare(str(db_path))
    rng = random.Random(seed)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    start = time.time() - 30 * 86400
    conn.execute("BEGIN")
    for chunk in range(0, calls, 100_000):
        call_rows, event_rows = [], []
        for n in range(chunk, min(calls, chunk + 100_000)):
            outcome, status, sip = rng.choice(OUTCOMES)
            at = start + n * (30 * 86400 / calls)
            call_id = f"c{n}"
            caller = did(rng.randrange(200))
            call_rows.append(("dialer", call_id, status, outcome, "outbound", caller, f"+1312555{n % 10000:04d}",
                              f"+1312555{n % 10000:04d}", f"did_{caller[-4:]}", f"campaign-{n % 10}", sip, 2, at, at))
            event_rows.append(("dialer", f"{call_id}:call.completed", at, "call.completed", call_id, 1, status, outcome,
                               b"{}", '{"format": "unlimcall"}'))
        conn.executemany("INSERT INTO calls (source, call_id, status, outcome, direction, from_number, to_number, "
                         "phone, did, campaign, sip_code, event_count, first_received_at, updated_at) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", call_rows)
        conn.executemany("INSERT INTO events (source, dedupe_key, received_at, event_type, call_id, is_call, status, "
                         "outcome, body, event_json) VALUES (?,?,?,?,?,?,?,?,?,?)", event_rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def stored_events(count: int, first_id: int, seed: int = 2) -> list[SimpleNamespace]:
    """What the writer hands over: a mix of call starts (some international) and finished calls."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        call_id = f"new{i}"
        caller = did(rng.randrange(200))
        if i % 3 == 0:  # a dial: the caller-ID check looks at it
            to = "+493012345678" if i % 30 == 0 else f"+1312555{i % 10000:04d}"
            ev = CallEvent("unlimcall", "call.initiated", f"{call_id}:i", call_id=call_id, status="initiated",
                           direction="outbound", from_number=caller, to_number=to)
            before, record = None, CallRecord("dialer", call_id, status="initiated", direction="outbound",
                                              from_number=caller, to_number=to)
        else:
            outcome, status, sip = rng.choice(OUTCOMES)
            ev = CallEvent("unlimcall", "call.completed", f"{call_id}:c", call_id=call_id, status=status, sip_code=sip,
                           direction="outbound", from_number=caller, to_number="+13125550000")
            before = CallRecord("dialer", call_id, status="initiated", direction="outbound", from_number=caller)
            record = CallRecord("dialer", call_id, status=status, outcome=outcome, direction="outbound",
                                from_number=caller, to_number="+13125550000", did=f"did_{caller[-4:]}",
                                campaign=f"campaign-{i % 10}", sip_code=sip)
        out.append(SimpleNamespace(duplicate=False, event_id=first_id + i, source="dialer", event=ev, before=before,
                                   record=record, received_at=time.time()))
    return out


async def evaluation(data_dir: Path, events: int) -> dict[str, float]:
    from connector.automations.service import Automations
    from connector.automations.settings import parse_automations
    from connector.store.reader import StoreReader
    from connector.store.writer import StoreWriter

    settings = parse_automations({"automations": {name: {"enabled": True} for name in RECIPES}})
    writer = StoreWriter(data_dir / "callsync.db")
    writer.start()
    reader = StoreReader(data_dir / "callsync.db")
    automations = Automations(settings, writer, reader)
    try:
        started = time.perf_counter()
        await automations.start()
        rebuild = time.perf_counter() - started
        batch = stored_events(events, automations.cut + 1)
        started = time.perf_counter()
        cpu = time.process_time()
        for i in range(0, len(batch), 64):
            automations._take(batch[i:i + 64])
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        subjects = sum(row.get("subjects") or 0 for row in automations.status())
        await automations.stop()
        return {"rebuild_s": rebuild, "us_per_event": took / events * 1e6, "cpu_us_per_event": cpu / events * 1e6,
                "alerts": automations.alerts_raised, "subjects": subjects}
    finally:
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        reader.close()


# -- receiver throughput --------------------------------------------------------------------


def serve_config(on: bool) -> str:
    from receiver_bench import CONFIG

    return CONFIG + "".join(f"\n[automations.{name}]\nenabled = {'true' if on else 'false'}\n" for name in RECIPES)


def throughput(workdir: Path, on: bool, pool: Path, pool_size: int, offset: int,
               args: argparse.Namespace) -> tuple[float, float, int]:
    """(requests/s, server CPU µs per request, requests sent) of one measured run."""
    from receiver_bench import SECRET, SOURCE, cpu_seconds, run_wrk

    data_dir = Path(tempfile.mkdtemp(prefix=f"auto-{'on' if on else 'off'}-", dir=workdir))
    (data_dir / "config.toml").write_text(serve_config(on))
    env = os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                        f"CALLSYNC_SECRET_{SOURCE.upper()}": SECRET, "CALLSYNC_ADMIN_TOKEN": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--data-dir", str(data_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            match = READY.search(proc.stdout.readline())
            port = int(match.group(1)) if match else None
            if proc.poll() is not None:
                raise RuntimeError("callsync serve did not start")
        url = f"http://127.0.0.1:{port}/hooks/{SOURCE}"
        warm = run_wrk(url, pool, connections=args.connections, threads=1, seconds=args.warmup, start=offset)
        cpu = cpu_seconds(proc.pid) or 0.0
        result = run_wrk(url, pool, connections=args.connections, threads=1, seconds=args.duration,
                         start=(offset + warm.sent) % pool_size)
        cpu = (cpu_seconds(proc.pid) or 0.0) - cpu
        if result.non2xx or result.socket_errors:
            raise RuntimeError(f"{result.non2xx} non-2xx, socket errors {result.socket_errors}")
        return result.requests / result.seconds, cpu / max(result.requests, 1) * 1e6, warm.sent + result.sent
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py automations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000, help="finished calls in the big store (1,000,000)")
    parser.add_argument("--events", type=int, default=200_000, help="new events evaluated (200,000)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run (2)")
    parser.add_argument("--repeat", type=int, default=3, help="on/off pairs, alternating (3)")
    parser.add_argument("--skip-receiver", action="store_true", help="only the evaluation cost")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the ratio misses its target")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # alerts raised by the synthetic stream are not the point here
    workdir = Path(tempfile.mkdtemp(prefix="automations-bench-"))
    try:
        empty, big = workdir / "empty", workdir / "big"
        empty.mkdir()
        big.mkdir()
        started = time.perf_counter()
        generate(big / "callsync.db", args.calls)
        print(f"store: {args.calls:,} finished calls written in {time.perf_counter() - started:.1f} s")
        small = asyncio.run(evaluation(empty, args.events))
        large = asyncio.run(evaluation(big, args.events))
        for label, r in ((f"empty store", small), (f"{args.calls:,} calls stored", large)):
            print(f"evaluation, every recipe on, {label:>22}: {r['us_per_event']:6.2f} µs/event "
                  f"(CPU {r['cpu_us_per_event']:.2f} µs), start-up rebuild {r['rebuild_s']:.2f} s, "
                  f"{r['subjects']:,} subjects, {r['alerts']} alerts")
        if args.skip_receiver:
            return 0
        from receiver_bench import write_pool

        pool = workdir / "pool.txt"
        pool_size = int((args.duration + args.warmup) * 4000 * (2 * args.repeat) * 1.1)
        write_pool(pool, pool_size)
        rates: dict[bool, list[float]] = {True: [], False: []}
        cpus: dict[bool, list[float]] = {True: [], False: []}
        pairs: list[float] = []
        offset = 0
        for _ in range(args.repeat):
            for on in (False, True):
                rate, cpu, sent = throughput(workdir, on, pool, pool_size, offset, args)
                offset = (offset + sent) % pool_size
                rates[on].append(rate)
                cpus[on].append(cpu)
                print(f"receiver, automations {'on ' if on else 'off'}: {rate:8.0f} req/s, server CPU {cpu:6.0f} µs "
                      f"per request ({args.connections} connections, {args.duration:g} s)")
            pairs.append(rates[True][-1] / rates[False][-1])
        ratio = statistics.median(pairs)
        verdict = "ok" if ratio >= TARGET_RATIO else f"below the {TARGET_RATIO} target"
        print(f"receiver throughput, all recipes on / all off: {ratio:.3f} (median of {len(pairs)} back-to-back "
              f"pairs; {verdict}); server CPU per request on / off: "
              f"{statistics.median(cpus[True]) / statistics.median(cpus[False]):.3f}")
        return 1 if args.strict and ratio < TARGET_RATIO else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
