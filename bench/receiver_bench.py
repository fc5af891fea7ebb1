"""Receiver throughput: what storing costs on top of verifying and parsing.

One run loads four servers, each in its own subprocess, with the same pool of
distinct signed UnlimCall-style bodies and the same wrk settings:

  a  bare     aiohttp handler that reads the body and answers 200 JSON
  m  minimal  aiohttp handler that checks the HMAC and parses the JSON, nothing else
  b  verify   callsync's HooksReceiver (checks, verify_hmac, normalize) storing nothing
  c  callsync ``python -m connector serve`` on a fresh data dir (WAL, synchronous=FULL,
              group commit; 200 only after the commit)

at each connection level (16 and 64 by default): a short warm-up, then a
measured wrk run.  It prints req/s, p50/p99 latency and non-2xx per variant and
the ratios c/m, c/b, b/m and m/a.  Target (one process, SQLite): c/m >= 0.35 at
64 connections with (c)'s p99 <= 100 ms.

Absolute numbers depend on whatever else the machine is doing; the ratios come
from one run with one method and are what to compare across changes.

    .venv/bin/python bench/run.py receiver [--duration 10] [--warmup 2] [--connections 16,64]

Needs wrk (``packaging/sysdeps.sh bench`` installs it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA = BENCH_DIR / "wrk_pool.lua"
SERVERS = BENCH_DIR / "receiver_servers.py"

SOURCE = "bench"
SECRET = "bench-receiver-secret-0123456789abcdef"
CONFIG = f"""\
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.{SOURCE}]
kind = "hmac"
signature_header = "X-Webhook-Signature"
signature_encoding = "hex"
"""

VARIANTS = ("a", "m", "b", "c")
LABELS = {"a": "a bare aiohttp", "m": "m minimal verifier", "b": "b verify+parse", "c": "c callsync (FULL)"}
MODES = {"a": "bare", "m": "minimal", "b": "verify", "c": "serve"}
TARGET_RATIO = 0.35  # c/m: callsync's durable throughput against the minimal verifier
TARGET_P99_MS = 100.0  # (c)'s p99 at the target level
TARGET_LEVEL = 64
MIN_NEW_FRACTION = 0.95
POOL_RATE_GUESS = 4000  # req/s the pool is sized for by default; a wrap is reported, never hidden
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark itself failed (server did not start, wrong answers, nothing stored...)."""


# -- the pool of signed bodies -------------------------------------------------


def unlimcall_body(n: int, call_uuid: str) -> bytes:
    from tests.signing import dumps

    minute, second = divmod(n % 3600, 60)
    talk = 20 + n % 580
    return dumps(
        {
            "event": "call.completed",
            "call_uuid": call_uuid,
            "from": f"+1202555{n % 10000:04d}",
            "to": f"+1{3125550000 + (n * 7919) % 10000}",
            "direction": "outbound",
            "initiated_at": f"2026-06-04T09:{minute:02d}:{second:02d}.000Z",
            "answered_at": f"2026-06-04T09:{minute:02d}:{second:02d}.500Z",
            "ended_at": f"2026-06-04T10:{minute:02d}:{second:02d}.000Z",
            "duration_seconds": talk,
            "hangup_cause": "normal_clearing",
            "hangup_cause_code": 16,
            "seat_id": f"seat_{n % 97:04x}",
            "did_id": f"did_us_{n % 13:04d}",
            "campaign": "spring-renewals",
        }
    )


def write_pool(path: Path, size: int) -> int:
    """``size`` lines "<hex signature>\\t<body>"; returns the mean body length."""
    from tests.signing import hmac_headers

    total = 0
    with path.open("w", encoding="utf-8") as out:
        for n in range(size):
            body = unlimcall_body(n, str(uuid.uuid4()))
            signature = hmac_headers(body, SECRET)["X-Webhook-Signature"]
            text = body.decode()
            if "\t" in text or "\n" in text:
                raise BenchError("a pool body contains a tab or newline")
            out.write(f"{signature}\t{text}\n")
            total += len(body)
    return total // max(size, 1)


# -- subprocesses --------------------------------------------------------------


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User+system CPU of a process (or one of its threads) from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class Server:
    """One variant's server subprocess; stdout is read by a thread, stderr goes to a log file."""

    def __init__(self, variant: str, data_dir: Path, log_path: Path, plain_serve: bool,
                 patch: Path | None = None) -> None:
        self.variant = variant
        self.data_dir = data_dir
        self.log_path = log_path
        env = os.environ | {
            "CALLSYNC_SECRET_BENCH": SECRET,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        if patch is not None:
            env["BENCH_PATCH"] = str(patch)
        if variant == "c" and plain_serve:
            cmd = [sys.executable, "-m", "connector", "serve", "--data-dir", str(data_dir)]
        else:
            mode = MODES[variant]
            cmd = [sys.executable, str(SERVERS), mode, "--data-dir", str(data_dir)]
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self.admin_url = ""
        self.hung = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise BenchError(
                        f"variant {self.variant}: no line matching {pattern!r} within {timeout:.0f}s "
                        f"(exit code {self.proc.poll()}); log tail:\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.2))

    def start(self, timeout: float = 60.0) -> None:
        if self.variant == "c":
            m = self.wait_line(r"hooks on (http://127\.0\.0\.1:\d+)/hooks/\S+\s+admin on (http://127\.0\.0\.1:\d+)",
                               timeout)
            self.url, self.admin_url = f"{m.group(1)}/hooks/{SOURCE}", m.group(2)
        else:
            m = self.wait_line(r"bench-server: \w+ on (http://127\.0\.0\.1:\d+)", timeout)
            self.url = f"{m.group(1)}/hooks/{SOURCE}"

    def writer_counters(self, timeout: float = 10.0) -> tuple[int, int] | None:
        """(batches, items) of the store writer, via SIGUSR1; None for the plain serve command."""
        if self.variant != "c" or self.proc.poll() is not None:
            return None
        with self._cond:
            seen = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)
        try:
            m = self.wait_line(r"bench-writer batches=(\d+) items=(\d+)", timeout, after=seen)
        except BenchError:
            return None
        return int(m.group(1)), int(m.group(2))

    def cpu(self) -> tuple[float | None, float | None]:
        """(whole process, event-loop thread) CPU seconds so far."""
        return cpu_seconds(self.proc.pid), cpu_seconds(self.proc.pid, self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; ``self.hung`` tells whether the kill was needed."""
        self.hung = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.hung = True
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        self._log.close()
        return self.proc.returncode


# -- wrk -----------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    sent: int
    wraps: int
    cpu_seconds: float
    output: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, pool: Path, *, connections: int, threads: int, seconds: float, start: int) -> WrkResult:
    threads = max(1, min(threads, connections))
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "--latency", "-s", str(LUA), url, "--", str(pool), str(start), str(threads),
    ]
    before = children_cpu()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(cmd)}") from exc
    cpu = children_cpu() - before
    output = done.stdout + done.stderr
    m = re.search(r"^BENCH (.*)$", done.stdout, re.M)
    if done.returncode != 0 or not m:
        raise BenchError(f"wrk failed (exit {done.returncode}): {' '.join(cmd)}\n{output}")
    v = {k: float(x) for k, x in (kv.split("=", 1) for kv in m.group(1).split())}
    return WrkResult(
        requests=int(v["requests"]),
        seconds=v["duration_us"] / 1e6,
        non2xx=int(v["non2xx"]),
        socket_errors={k: int(v[k]) for k in ("connect", "read", "write", "timeout") if v[k]},
        p50_ms=v["p50_us"] / 1000,
        p90_ms=v["p90_us"] / 1000,
        p99_ms=v["p99_us"] / 1000,
        sent=int(v["sent"]),
        wraps=int(v["wraps"]),
        cpu_seconds=cpu,
        output=output,
    )


# -- optional profile of a server while it is measured -------------------------


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[str] | None:
    """py-spy (raw collapsed stacks, every thread, idle included) for ``seconds``; None if unavailable."""
    exe = py_spy_path()
    if exe is None:
        return None
    cmd = [exe, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "100", "-f", "raw",
           "-t", "-i", "--nonblocking", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def summarize_profile(raw: Path, out: Path, top: int = 30) -> None:
    """Per thread: share of samples by function (inclusive) and by line (where the thread was)."""
    threads: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    leaf: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1]
        n = int(count)
        threads[name] += n
        seen = {re.sub(r":\d+\)$", ")", f) for f in frames[1:]}
        inclusive.setdefault(name, Counter()).update({f: n for f in seen})
        leaf.setdefault(name, Counter())[frames[-1] if len(frames) > 1 else "?"] += n
    lines = [f"{raw.name}: share of samples per thread (idle included: select/queue.get = waiting for work)"]
    for name, total in threads.most_common():
        lines.append(f"\n== {name}: {total} samples\n  by function (inclusive):")
        lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive[name].most_common(top)]
        lines.append("  by line (innermost frame):")
        lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in leaf[name].most_common(top)]
    out.write_text("\n".join(lines) + "\n")


# -- one measurement -----------------------------------------------------------


@dataclass
class Measurement:
    variant: str
    connections: int
    wrk: WrkResult
    server_cpu: float | None = None  # share of one core during the measured run
    loop_cpu: float | None = None  # the event-loop (main) thread alone
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failed measurement


def http_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def count_rows(db: Path) -> tuple[int, int]:
    """(events, calls) rows in the store."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        calls = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        return events, calls
    finally:
        conn.close()


def measure(variant: str, connections: int, args: argparse.Namespace, pool: Path, pool_size: int,
            workdir: Path, round_no: int) -> Measurement:
    tag = f"{variant}-c{connections}-r{round_no}"
    data_dir = workdir / f"data-{tag}"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text(CONFIG)
    server = Server(variant, data_dir, workdir / f"server-{tag}.log", args.plain_serve, args.patch)
    m: Measurement | None = None
    try:
        try:
            server.start()
            offset = 0
            warm: WrkResult | None = None
            if args.warmup > 0:
                warm = run_wrk(server.url, pool, connections=connections, threads=args.threads,
                               seconds=args.warmup, start=offset)
                offset = (offset + warm.sent) % pool_size
            counters_before = server.writer_counters()
            profiler = None
            if args.py_spy is not None and variant in ("b", "c"):
                profiler = start_profile(server.proc.pid, args.duration - 1, args.py_spy / f"py-spy-{tag}.raw")
            cpu_before, loop_before = server.cpu()
            result = run_wrk(server.url, pool, connections=connections, threads=args.threads,
                             seconds=args.duration, start=offset)
            cpu_after, loop_after = server.cpu()
            if profiler is not None:
                finish_profile(profiler, args.py_spy / f"py-spy-{tag}.raw")
            counters_after = server.writer_counters()
            (workdir / f"wrk-{tag}.txt").write_text(result.output)
            m = Measurement(variant, connections, result)
            if cpu_before is not None and cpu_after is not None:
                m.server_cpu = (cpu_after - cpu_before) / result.seconds
            if loop_before is not None and loop_after is not None:
                m.loop_cpu = (loop_after - loop_before) / result.seconds
            m.info["wrk_cpu"] = result.cpu_seconds / result.seconds
            for label, run in (("warm-up", warm), ("measured run", result)):
                if run is None:
                    continue
                if run.non2xx:
                    m.problems.append(
                        f"{run.non2xx} non-2xx responses in the {label} (server log: {server.log_path})")
                if run.socket_errors:
                    m.problems.append(f"socket errors in the {label}: {run.socket_errors}")
                if run.requests == 0:
                    m.problems.append(f"no request completed in the {label}")
            if counters_before and counters_after:
                batches = counters_after[0] - counters_before[0]
                items = counters_after[1] - counters_before[1]
                m.info["batches"] = batches
                m.info["mean_batch"] = items / batches if batches else None
            if server.proc.poll() is not None:
                m.problems.append(f"server exited during the run (code {server.proc.returncode})")
            if variant == "c":
                read_metrics(server, m, warm, result, pool_size)
        finally:
            code = server.stop()
        if m is not None and variant == "c":
            if server.hung:
                m.notes.append("callsync serve did not exit within 15 s of SIGTERM and was killed "
                               "(shutdown hang, not a throughput problem)")
            elif code != 0:
                m.problems.append(f"callsync serve exited with {code} on SIGTERM; log tail:\n{server.log_tail()}")
            try:
                events, calls = count_rows(data_dir / "callsync.db")
            except sqlite3.Error as exc:
                m.problems.append(f"could not read the store: {exc}")
            else:
                check_stored(m, events, calls)
        assert m is not None
        return m
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def finish_profile(profiler: subprocess.Popen[str], raw: Path) -> None:
    try:
        _, err = profiler.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        _, err = profiler.communicate()
    if raw.exists():
        summary = raw.with_suffix(".txt")
        summarize_profile(raw, summary)
        print(f"    profile: {summary}", flush=True)
    else:
        print(f"    py-spy wrote no profile: {err.strip()[-300:]}", flush=True)


def read_metrics(server: Server, m: Measurement, warm: WrkResult | None, result: WrkResult, pool_size: int) -> None:
    """Metrics from the admin API while the server still runs (the row count comes after it stopped)."""
    try:
        metrics = http_json(f"{server.admin_url}/api/metrics")
    except (OSError, ValueError) as exc:
        m.problems.append(f"GET /api/metrics failed: {exc}")
        metrics = {}
    m.info["metrics"] = {k: metrics.get(k) for k in ("received", "stored", "deduped", "rejected",
                                                     "rejected_total", "queue_depth", "ack_latency_ms")}
    if metrics.get("rejected_total"):
        m.problems.append(
            f"callsync rejected {metrics['rejected_total']} requests, by reason: {metrics.get('rejected')}")
    acked = sum(run.requests - run.non2xx for run in (warm, result) if run is not None)
    m.info["acked"] = acked
    sent = result.sent + (warm.sent if warm else 0)
    if sent > pool_size:
        m.info["pool_wrapped"] = True


def check_stored(m: Measurement, events: int, calls: int) -> None:
    acked = m.info.get("acked", 0)
    metrics = m.info.get("metrics") or {}
    stored, deduped = metrics.get("stored"), metrics.get("deduped")
    m.info["rows"] = events
    m.info["calls"] = calls
    if events < acked * MIN_NEW_FRACTION:
        m.problems.append(f"only {events} events stored for {acked} 2xx responses")
    if isinstance(stored, int) and isinstance(deduped, int) and stored + deduped:
        new_fraction = stored / (stored + deduped)
        m.info["new_fraction"] = new_fraction
        if new_fraction < MIN_NEW_FRACTION:
            m.problems.append(
                f"only {new_fraction:.1%} of requests were new events ({deduped} duplicates): "
                f"raise --pool-size"
            )
        if stored != events:
            # Requests wrk had sent but not counted when it stopped are committed after the metrics read.
            m.info["stored_after_metrics"] = events - stored


# -- report --------------------------------------------------------------------


def fmt(value: float | None, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def median_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(results: list[Measurement], levels: list[int]) -> dict[tuple[str, int], dict[str, Any]]:
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for level in levels:
        for variant in VARIANTS:
            runs = [r for r in results if r.variant == variant and r.connections == level]
            if not runs:
                continue
            table[(variant, level)] = {
                "rps": median_of([r.wrk.rps for r in runs]),
                "p50": median_of([r.wrk.p50_ms for r in runs]),
                "p99": median_of([r.wrk.p99_ms for r in runs]),
                "non2xx": sum(r.wrk.non2xx for r in runs),
                "errors": sum(sum(r.wrk.socket_errors.values()) for r in runs),
                "cpu": median_of([r.server_cpu for r in runs]),
                "loop": median_of([r.loop_cpu for r in runs]),
                "wrk_cpu": median_of([r.info.get("wrk_cpu") for r in runs]),
                "batch": median_of([r.info.get("mean_batch") for r in runs]),
                "runs": runs,
            }
    return table


def print_report(results: list[Measurement], levels: list[int], args: argparse.Namespace) -> None:
    table = summarize(results, levels)
    rounds = f", median of {args.repeat} rounds" if args.repeat > 1 else ""
    print()
    if args.py_spy is not None:
        print(f"PROFILED RUN: py-spy sampled (b) and (c) while they were measured; profiles in {args.py_spy}")
    if args.patch is not None:
        print(f"PATCHED RUN: every server ran {args.patch} first; these are not callsync's own numbers")
    print(f"receiver benchmark: wrk -t{args.threads}, {args.duration:g}s measured after {args.warmup:g}s warm-up"
          f"{rounds}; CPU columns are cores used by the server process / its event-loop thread / wrk")
    header = (f"{'variant':<19} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} "
              f"{'srv CPU':>7} {'loop':>5} {'wrk':>5} {'batch':>6}")
    print(header)
    print("-" * len(header))
    for level in levels:
        for variant in VARIANTS:
            row = table.get((variant, level))
            if row is None:
                continue
            non2xx = str(row["non2xx"]) + (f"+{row['errors']}err" if row["errors"] else "")
            print(f"{LABELS[variant]:<19} {level:>5} {fmt(row['rps'], '9.0f'):>9} {fmt(row['p50'], '8.2f'):>8} "
                  f"{fmt(row['p99'], '8.2f'):>8} {non2xx:>7} {fmt(row['cpu'], '7.2f'):>7} "
                  f"{fmt(row['loop'], '5.2f'):>5} {fmt(row['wrk_cpu'], '5.2f'):>5} {fmt(row['batch'], '6.1f'):>6}")
    print()
    print("ratios (req/s):")
    for level in levels:
        a, m, b, c = (table.get((v, level), {}).get("rps") for v in VARIANTS)

        def ratio(x: float | None, y: float | None) -> float | None:
            return x / y if x is not None and y else None

        cm = ratio(c, m)
        mark = ""
        if level == TARGET_LEVEL and cm is not None:
            p99 = table[("c", level)]["p99"]
            met = cm >= TARGET_RATIO and p99 is not None and p99 <= TARGET_P99_MS
            mark = (f"   target c/m >= {TARGET_RATIO:.2f} with p99 <= {TARGET_P99_MS:.0f} ms: "
                    + ("MET" if met else "NOT MET"))
        print(f"  {level:>3} connections: c/m = {fmt(cm, '.2f')}   c/b = {fmt(ratio(c, b), '.2f')}   "
              f"b/m = {fmt(ratio(b, m), '.2f')}   m/a = {fmt(ratio(m, a), '.2f')}{mark}")
        if args.repeat > 1:
            per_round = []
            for rnd in range(args.repeat):
                rr = {r.variant: r.wrk.rps for r in results if r.connections == level and r.info["round"] == rnd}
                if rr.get("m") and "c" in rr:
                    per_round.append(f"{rr['c'] / rr['m']:.2f}")
            print(f"       c/m per round: {', '.join(per_round)}")
    if TARGET_LEVEL not in levels:
        print(f"  (target is checked at {TARGET_LEVEL} connections, not measured in this run)")
    print()
    for r in results:
        if r.variant != "c":
            continue
        metrics = r.info.get("metrics") or {}
        ack = metrics.get("ack_latency_ms") or {}
        new = r.info.get("new_fraction")
        print(f"  c @{r.connections:<3} round {r.info['round'] + 1}: {r.info.get('rows', '?')} events stored "
              f"({r.info.get('calls', '?')} calls) for {r.info.get('acked', '?')} 2xx; "
              f"new {fmt(new * 100 if new is not None else None, '.1f')}%; "
              f"writer mean batch {fmt(r.info.get('mean_batch'), '.1f')} over {r.info.get('batches', '?')} commits; "
              f"server ack p50/p95/p99 {fmt(ack.get('p50'), '.1f')}/{fmt(ack.get('p95'), '.1f')}/"
              f"{fmt(ack.get('p99'), '.1f')} ms")


def check_environment() -> None:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: run `sh packaging/sysdeps.sh bench` (Debian package wrk)")
    try:
        from connector.store.db import open_sqlite as connect
    except ImportError:  # a release before the store adapter
        from connector.store.schema import connect  # type: ignore[no-redef]

    if "synchronous=FULL" not in inspect.getsource(connect):
        print(f"warning: {connect.__module__}.{connect.__name__} no longer sets synchronous=FULL", file=sys.stderr)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py receiver", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per variant and level (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each measurement (2)")
    p.add_argument("--connections", default="16,64", help="comma-separated connection levels (16,64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of all variants and levels; medians are shown")
    p.add_argument("--pool-size", type=int, default=0,
                   help=f"signed bodies in the pool (default: {POOL_RATE_GUESS} req/s x (warm-up + duration))")
    p.add_argument("--variants", default="a,m,b,c", help="which of a,m,b,c to run (a,m,b,c)")
    p.add_argument("--plain-serve", action="store_true",
                   help="start (c) as plain `python -m connector serve` (no writer batch counters)")
    p.add_argument("--patch", type=Path,
                   help="Python file run inside every server before it starts (to try a change to connector/ "
                        "without editing it); the report says the run was patched")
    p.add_argument("--py-spy", type=Path, metavar="DIR",
                   help="record py-spy profiles of (b) and (c) during each measured run into DIR "
                        "(pip install py-spy into .venv); profiling lowers their req/s")
    p.add_argument("--work-dir", type=Path,
                   help="where the pool and (c)'s data dirs are created (default: the system temp dir); "
                        "put it on the disk callsync's data dir really lives on")
    p.add_argument("--keep", action="store_true", help="keep the work dir (pool, data dirs, logs) and print it")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.patch is not None:
        args.patch = args.patch.resolve()
        if not args.patch.is_file():
            p.error(f"--patch {args.patch}: no such file")
        if args.plain_serve:
            p.error("--patch needs the default (c) launcher, not --plain-serve")
    if args.py_spy is not None:
        if py_spy_path() is None:
            p.error("--py-spy: py-spy not found (.venv/bin/python -m pip install py-spy)")
        args.py_spy = args.py_spy.resolve()
        args.py_spy.mkdir(parents=True, exist_ok=True)
    args.levels = [int(x) for x in args.connections.split(",") if x.strip()]
    args.variant_list = [v for v in VARIANTS if v in {x.strip() for x in args.variants.split(",")}]
    if not args.levels or not args.variant_list:
        p.error("need at least one connection level and one variant")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        check_environment()
    except BenchError as exc:
        print(f"receiver bench: {exc}", file=sys.stderr)
        return 2
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="callsync-bench-", dir=args.work_dir))
    results: list[Measurement] = []
    failed = False
    try:
        pool_size = args.pool_size or int(POOL_RATE_GUESS * (args.warmup + args.duration))
        pool = workdir / "pool.tsv"
        started = time.monotonic()
        mean_len = write_pool(pool, pool_size)
        print(f"receiver bench: pool of {pool_size} signed bodies (~{mean_len} bytes each) in "
              f"{time.monotonic() - started:.1f}s; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
        for rnd in range(args.repeat):
            for level in args.levels:
                for variant in args.variant_list:
                    print(f"  round {rnd + 1}/{args.repeat}: {LABELS[variant]} @ {level} connections ...",
                          flush=True)
                    m = measure(variant, level, args, pool, pool_size, workdir, rnd)
                    m.info["round"] = rnd
                    results.append(m)
                    print(f"    {m.wrk.rps:.0f} req/s, p50 {m.wrk.p50_ms:.2f} ms, p99 {m.wrk.p99_ms:.2f} ms, "
                          f"non-2xx {m.wrk.non2xx}", flush=True)
                    for note in m.notes:
                        print(f"    note: {note}", flush=True)
                    for problem in m.problems:
                        print(f"    FAILED: {problem}", flush=True)
                        failed = True
        print_report(results, args.levels, args)
        if args.json:
            args.json.write_text(json.dumps(
                [{"variant": r.variant, "connections": r.connections, "round": r.info.get("round"),
                  "rps": r.wrk.rps, "p50_ms": r.wrk.p50_ms, "p99_ms": r.wrk.p99_ms, "non2xx": r.wrk.non2xx,
                  "socket_errors": r.wrk.socket_errors, "server_cpu": r.server_cpu, "loop_cpu": r.loop_cpu,
                  "info": r.info, "problems": r.problems} for r in results], indent=2, default=str))
    except BenchError as exc:
        print(f"receiver bench FAILED: {exc}", file=sys.stderr)
        failed = True
    except KeyboardInterrupt:
        print("receiver bench: interrupted", file=sys.stderr)
        failed = True
    finally:
        if args.keep or failed:
            print(f"work dir (pool, wrk output, server logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print("receiver bench: FAILED (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
