"""Crash safety: `callsync serve` as a real process, killed with SIGKILL under load, restarted.

Every event that was answered 2xx must be in the store afterwards, exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.serve_process import start_serve
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.slow

SECRET = "crash-test-secret"
ENV = {"CALLSYNC_SECRET_DIALER": SECRET}
CONFIG = """
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.dialer]
kind = "hmac"
"""


def payload(n: int) -> bytes:
    return dumps({"event": "call.completed", "call_uuid": f"crash-{n}", "from": "+12025550100",
                  "to": f"+1202555{n % 10000:04d}", "direction": "outbound", "duration_seconds": n % 300})


async def load(port: int, counter: list[int], acked: set[int], stop: asyncio.Event, workers: int = 24) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def sender() -> None:
            while not stop.is_set():
                counter[0] += 1
                n = counter[0]
                body = payload(n)
                try:
                    async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                         headers=hmac_headers(body, SECRET)) as resp:
                        if resp.status == 200:
                            acked.add(n)
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(sender() for _ in range(workers)))


async def run_cycle(data_dir: Path, counter: list[int], acked: set[int], rng: random.Random) -> None:
    proc, port, _ = await start_serve(data_dir, ENV)
    stop = asyncio.Event()
    task = asyncio.create_task(load(port, counter, acked, stop))
    await asyncio.sleep(rng.uniform(0.3, 1.5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    await task


def stored_keys(backend, data_dir: Path) -> list[str]:
    if backend.name == "sqlite":
        conn = sqlite3.connect(data_dir / "callsync.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    return [row[0] for row in backend.query(data_dir, "SELECT call_id FROM events")]


async def test_acknowledged_events_survive_kill_9(tmp_path, backend):
    (tmp_path / "config.toml").write_text(CONFIG)
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    counter, acked = [0], set()
    for _ in range(5):
        await run_cycle(tmp_path, counter, acked, rng)

    keys = stored_keys(backend, tmp_path)
    assert len(acked) > 100, "the load generator should have had many events acknowledged"
    assert len(keys) == len(set(keys)), "an event is stored twice"
    missing = {f"crash-{n}" for n in acked} - set(keys)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"

    # After a restart the same events are recognised as duplicates, not stored again.
    proc, port, _ = await start_serve(tmp_path, ENV)
    try:
        async with aiohttp.ClientSession() as http:
            for n in sorted(acked)[:20]:
                body = payload(n)
                async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                     headers=hmac_headers(body, SECRET)) as resp:
                    assert resp.status == 200
                    assert json.loads(await resp.text())["status"] == "duplicate"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert len(stored_keys(backend, tmp_path)) == len(keys)
    if backend.name == "postgres":  # server mode writes no SQLite file in the data dir
        assert not (tmp_path / "callsync.db").exists()
