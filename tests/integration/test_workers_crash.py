"""`callsync serve --workers 2` on PostgreSQL as real processes: kill -9 of any of them - a worker or the
supervisor - loses no acknowledged event, stores none twice, and writes no CRM note twice; a contact's
notes arrive in the order its calls ended, whichever process synced them."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.fakes.ghl_server import FakeGhl, Fault
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.slow
SECRET = "workers-crash-secret"
READY = re.compile(r"workers: hooks on http://127\.0\.0\.1:(\d+).*admin on http://127\.0\.0\.1:(\d+)")


def write_config(data_dir: Path, ghl: FakeGhl | None = None) -> None:
    crm = "" if ghl is None else f"""
[crm.ghl]
location_id = "{ghl.location_id}"
base_url = "{ghl.base_url}"
lease_seconds = 1.5
timeout_seconds = 1.0
retry_schedule = [0.1, 0.2, 0.5]
"""
    (data_dir / "config.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.dialer]
kind = "hmac"
{crm}""")


class Workers:
    """`callsync serve --workers 2` (the store URL from the environment the backend fixture set)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.env = data_dir, env
        self.proc: subprocess.Popen[str] | None = None
        self.port = self.admin_port = 0

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "serve", "--workers", "2", "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "CALLSYNC_SECRET_DIALER": SECRET}
            | self.env)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = await loop.run_in_executor(None, self.proc.stdout.readline)  # type: ignore[union-attr]
            match = READY.search(line)
            if match:
                self.port, self.admin_port = int(match.group(1)), int(match.group(2))
                return
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("callsync serve --workers 2 did not start")

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return [p for p in psutil.Process(self.proc.pid).children() if p.is_running()]

    async def both_running(self, timeout: float = 30.0) -> None:
        """Until the supervisor has two live workers again and they answer."""
        deadline = time.monotonic() + timeout
        while len([p for p in self.children() if p.status() != psutil.STATUS_ZOMBIE]) < 2:
            assert time.monotonic() < deadline, "a killed worker was not started again"
            await asyncio.sleep(0.05)

    def kill_supervisor(self) -> None:
        assert self.proc is not None
        children = self.children()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        psutil.wait_procs(children, timeout=30)  # they see their pipe close and stop

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=60) == 0


def event(n: int) -> bytes:
    return dumps({"event": "call.completed", "call_uuid": f"w-{n}", "from": "+12025550100",
                  "to": f"+1202555{n % 10000:04d}", "direction": "outbound", "duration_seconds": n % 300})


async def load(port: int, counter: list[int], acked: set[int], stop: asyncio.Event, rng: random.Random) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

        async def sender() -> None:
            while not stop.is_set():
                counter[0] += 1
                # now and then an event sent again (a sender's retry): it may reach the other worker
                n = rng.choice(sorted(acked)) if acked and rng.random() < 0.1 else counter[0]
                body = event(n)
                try:
                    async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                         headers=hmac_headers(body, SECRET)) as resp:
                        if resp.status == 200:
                            acked.add(n)
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(sender() for _ in range(24)))


@pytest.mark.postgres_only
async def test_kill_9_of_any_process_loses_no_acknowledged_event(tmp_path, backend):
    write_config(tmp_path)
    rng = random.Random(int(os.environ.get("CRASH_SEED", "9")))
    counter, acked = [0], set()
    workers = Workers(tmp_path, {})
    await workers.start()
    try:
        for cycle in range(5):
            stop = asyncio.Event()
            task = asyncio.create_task(load(workers.port, counter, acked, stop, rng))
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            if cycle % 2 == 0:  # a worker: the supervisor starts it again, the other one goes on serving
                os.kill(rng.choice(workers.children()).pid, signal.SIGKILL)
                await workers.both_running()
                await asyncio.sleep(rng.uniform(0.3, 0.8))
            else:  # the supervisor: its workers stop, and the whole thing is started again
                workers.kill_supervisor()
                stop.set()
                await task
                await workers.start()
                continue
            stop.set()
            await task
    finally:
        workers.stop()

    keys = [r[0] for r in backend.query(tmp_path, "SELECT call_id FROM events")]
    assert len(acked) > 100, "the load generator should have had many events acknowledged"
    assert len(keys) == len(set(keys)), "an event is stored twice"
    missing = {f"w-{n}" for n in acked} - set(keys)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    calls = backend.query(tmp_path, "SELECT COUNT(*), SUM(event_count) FROM calls")[0]
    assert calls == (len(keys), len(keys))  # one call per event, each folded from its one event
    assert not (tmp_path / "callsync.db").exists()


def call(call_id: str, phone: str, minute: int) -> bytes:
    return dumps({"event": "call.completed", "call_uuid": call_id, "from": "+12025550000", "to": phone,
                  "direction": "outbound", "initiated_at": f"2026-06-04T10:{minute:02d}:00Z",
                  "answered_at": f"2026-06-04T10:{minute:02d}:05Z", "ended_at": f"2026-06-04T10:{minute:02d}:40Z",
                  "duration_seconds": 35, "hangup_cause": "normal_clearing"})


@pytest.mark.postgres_only
async def test_kill_9_of_workers_while_syncing_writes_each_note_once_in_call_order(tmp_path, backend, ghl):
    write_config(tmp_path, ghl)
    rng = random.Random(int(os.environ.get("CRASH_SEED", "3")))
    contacts = {f"+1202555{7000 + c:04d}": [f"c{c}-{k}" for k in range(3)] for c in range(3)}
    singles = {f"+1202555{8000 + s:04d}": [f"s{s}"] for s in range(4)}
    calls = [(cid, phone, 10 + k) for phone, ids in (contacts | singles).items() for k, cid in enumerate(ids)]
    rng.shuffle(calls)  # a contact's calls reach different workers, later ones first
    # Writes that land after the client gave up: a kill during one leaves its outcome unknown.
    ghl.inject("note", *[Fault.timeout(1.3, perform=True) if i % 3 == 0 else Fault.none() for i in range(12)])
    workers = Workers(tmp_path, {})  # no CRM token yet: the calls are all stored before any is synced
    await workers.start()
    try:
        async with aiohttp.ClientSession() as http:
            for call_id, phone, minute in calls:
                body = call(call_id, phone, minute)
                async with http.post(f"http://127.0.0.1:{workers.port}/hooks/dialer", data=body,
                                     headers=hmac_headers(body, SECRET)) as resp:
                    assert resp.status == 200
    finally:
        workers.stop()
    workers = Workers(tmp_path, {"CALLSYNC_GHL_TOKEN": ghl.token})
    await workers.start()
    try:
        kills = 0
        deadline = time.monotonic() + 120
        while True:
            (open_jobs,), = backend.query(tmp_path, "SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'leased')")
            if open_jobs == 0:
                break
            assert time.monotonic() < deadline, f"{open_jobs} jobs still open"
            if kills < 4 and ghl.count("note") > kills:  # a worker dies while notes are being written
                os.kill(rng.choice(workers.children()).pid, signal.SIGKILL)
                kills += 1
                await workers.both_running()
            await asyncio.sleep(0.1)
        assert kills >= 2
    finally:
        workers.stop()
    await ghl.quiet()
    assert backend.query(tmp_path, "SELECT COUNT(*) FROM jobs WHERE status = 'dead'") == [(0,)]
    for phone, ids in (contacts | singles).items():
        contact = ghl.contact_by_phone(phone)
        assert contact is not None, phone
        markers = [m for note in ghl.notes.get(contact["id"], [])
                   for m in re.findall(r"\[callsync dialer/([^\]]+)\]", note["body"])]
        assert markers == ids, (phone, markers)  # each note once, in the order the calls ended
