"""Server mode: ``callsync serve --workers N`` on PostgreSQL against the minimal verifier.

    .venv/bin/python bench/run.py server                        # m, p1, p2 at 64 connections, 10 s each
    .venv/bin/python bench/server_bench.py --variants m,p2 --repeat 3

Variants, each its own subprocess(es), loaded with the same wrk settings and the same pool of
distinct signed UnlimCall-style bodies as the receiver benchmark (bench/receiver_bench.py):

  m   minimal verifier: an aiohttp handler that checks the HMAC and parses the JSON, nothing else
  pN  ``callsync serve --workers N --store-url postgresql://...`` (p1: one process, no supervisor)

PostgreSQL is a throwaway cluster started for the run from the machine's server binaries
(tests/pg.py: Unix socket in a temp dir, ``fsync`` and ``synchronous_commit`` on), a fresh
database per measurement.  Printed per variant: req/s, p50/p99, non-2xx, and the CPU used during
the measured run by callsync's processes, by PostgreSQL's and by wrk (in cores); then pN/m.
Target: p2/m >= 0.45 at 64 connections.

A run fails (exit 1) on any non-2xx or socket error, or when the database holds fewer events than
were acknowledged.  Absolute numbers move with whatever else the machine runs; compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _path in (str(ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from receiver_bench import (  # noqa: E402
    CONFIG, POOL_RATE_GUESS, SECRET, SOURCE, BenchError, Server, WrkResult, run_wrk, write_pool,
)

TARGET_RATIO = 0.45  # p2/m at TARGET_LEVEL
TARGET_LEVEL = 64
READY = re.compile(r"hooks on (http://127\.0\.0\.1:\d+)/hooks/")


def _cpu(pids: list[int]) -> float:
    """User+system CPU seconds of these processes (those gone count 0)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


class Callsync:
    """``callsync serve [--workers N] --store-url URL`` as a subprocess."""

    def __init__(self, workers: int, data_dir: Path, url: str, log: Path) -> None:
        cmd = [sys.executable, "-m", "connector", "serve", "--data-dir", str(data_dir), "--port", "0",
               "--admin-port", "0"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        env = os.environ | {"CALLSYNC_SECRET_BENCH": SECRET, "CALLSYNC_STORE_URL": url,
                            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "PYTHONUNBUFFERED": "1"}
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            match = READY.search(line)
            if match and ("workers:" in line or "worker " not in line):
                self.url = f"{match.group(1)}/hooks/{SOURCE}"
                self._ready.set()

    def start(self, timeout: float = 90.0) -> None:
        if not self._ready.wait(timeout):
            raise BenchError(f"callsync serve did not start (exit {self.proc.poll()}); see {self.log.name}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@dataclass
class Result:
    variant: str
    wrk: WrkResult
    cpu: dict[str, float] = field(default_factory=dict)  # cores used during the measured run
    problems: list[str] = field(default_factory=list)


def measure(variant: str, args: argparse.Namespace, pool: Path, pool_size: int, workdir: Path, cluster: Any,
            tag: str) -> Result:
    data_dir = workdir / f"data-{variant}-{tag}"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text(CONFIG)
    database = url = None
    if variant == "m":
        server: Any = Server("m", data_dir, workdir / f"server-{variant}-{tag}.log", False)
    else:
        database, url = cluster.create_database("bench")
        server = Callsync(int(variant[1:]), data_dir, url, workdir / f"server-{variant}-{tag}.log")
    try:
        server.start()
        warm = run_wrk(server.url, pool, connections=args.connections, threads=args.threads, seconds=args.warmup,
                       start=0) if args.warmup > 0 else None
        offset = warm.sent % pool_size if warm else 0
        ours = _tree(server.proc.pid)
        postgres = _tree(cluster.postmaster_pid()) if variant != "m" else []
        before = (_cpu(ours), _cpu(postgres))
        result = run_wrk(server.url, pool, connections=args.connections, threads=args.threads,
                         seconds=args.duration, start=offset)
        after = (_cpu(ours), _cpu(postgres))
        r = Result(variant, result)
        r.cpu = {"server": (after[0] - before[0]) / result.seconds, "wrk": result.cpu_seconds / result.seconds}
        if postgres:
            r.cpu["postgres"] = (after[1] - before[1]) / result.seconds
        for label, run in (("warm-up", warm), ("measured run", result)):
            if run is not None and run.non2xx:
                r.problems.append(f"{run.non2xx} non-2xx responses in the {label}")
            if run is not None and run.socket_errors:
                r.problems.append(f"socket errors in the {label}: {run.socket_errors}")
        if result.wraps and variant != "m":  # (m stores nothing: a body seen twice costs it the same)
            r.problems.append("the pool wrapped, so some events were duplicates: raise --pool-size")
    finally:
        code = server.stop()
    if url is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        acked = result.requests + (warm.requests if warm else 0)
        if events < acked:
            r.problems.append(f"only {events} events stored for {acked} acknowledged")
        if code != 0:
            r.problems.append(f"callsync serve exited with {code} on SIGTERM")
        cluster.drop_database(database)
    shutil.rmtree(data_dir, ignore_errors=True)
    return r


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per variant (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each measurement (2)")
    p.add_argument("--connections", type=int, default=TARGET_LEVEL, help=f"wrk connections ({TARGET_LEVEL})")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--variants", default="m,p1,p2", help="m and pN (N processes), comma-separated (m,p1,p2)")
    p.add_argument("--repeat", type=int, default=1, help="rounds; medians of the ratios are shown")
    p.add_argument("--pool-size", type=int, default=0, help="signed bodies in the pool (default: sized for the run)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (pool, server logs) and print it")
    args = p.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in args.variant_list:
        if v != "m" and not re.fullmatch(r"p[1-9]\d*", v):
            p.error(f"unknown variant {v!r}: m or pN")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from tests.pg import Cluster, find_bindir

    if shutil.which("wrk") is None:
        print("server bench: wrk is not installed: run `sh packaging/sysdeps.sh bench`", file=sys.stderr)
        return 2
    bindir = find_bindir()
    if bindir is None:
        print("server bench: PostgreSQL server binaries not found: run `sh packaging/sysdeps.sh bench`",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="callsync-server-bench-"))
    cluster = Cluster(bindir)
    failed = False
    results: list[Result] = []
    try:
        cluster.start()
        pool_size = args.pool_size or int(POOL_RATE_GUESS * 2 * (args.warmup + args.duration))
        pool = workdir / "pool.tsv"
        write_pool(pool, pool_size)
        print(f"server bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; PostgreSQL from {bindir} "
              f"(fsync on, synchronous_commit on); {args.connections} connections, pool of {pool_size} bodies")
        for rnd in range(args.repeat):
            for variant in args.variant_list:
                r = measure(variant, args, pool, pool_size, workdir, cluster, f"r{rnd}")
                results.append(r)
                cpu = "  ".join(f"{k} {v:.2f}" for k, v in r.cpu.items())
                print(f"  {variant:<3} {r.wrk.rps:8.0f} req/s  p50 {r.wrk.p50_ms:6.2f} ms  p99 {r.wrk.p99_ms:7.2f} ms  "
                      f"non-2xx {r.wrk.non2xx}  cores: {cpu}", flush=True)
                for problem in r.problems:
                    print(f"      FAILED: {problem}", flush=True)
                    failed = True
        print("ratios (req/s, median over rounds):")
        for variant in args.variant_list:
            if variant == "m":
                continue
            ratios = sorted(p.wrk.rps / m.wrk.rps for m, p in zip(
                [r for r in results if r.variant == "m"], [r for r in results if r.variant == variant]) if m.wrk.rps)
            if not ratios:
                continue
            ratio = ratios[len(ratios) // 2]
            mark = ""
            if variant == "p2" and args.connections == TARGET_LEVEL:
                mark = f"   target >= {TARGET_RATIO:.2f}: " + ("MET" if ratio >= TARGET_RATIO else "NOT MET")
            print(f"  {variant}/m = {ratio:.2f}{mark}  (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    except BenchError as exc:
        print(f"server bench FAILED: {exc}", file=sys.stderr)
        failed = True
    finally:
        cluster.stop()
        if failed or args.keep:
            print(f"work dir (pool, server logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
