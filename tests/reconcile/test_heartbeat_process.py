"""A real `callsync serve` killed with SIGKILL: its stretch ends at its last beat (at most one beat
interval before the kill), and the next start begins a new one - the time between is the gap."""

from __future__ import annotations

import asyncio
import time

from connector.reconcile.gaps import find_gaps
from connector.reconcile.runner import BEAT_SECONDS
from connector.store import gaps as store
from connector.store.db import open_sqlite
from tests.serve_process import start_serve


def stretches(data_dir) -> list[tuple[float, float]]:
    db = open_sqlite(str(data_dir / "callsync.db"), readonly=True)
    try:
        return store.stretches(db, 0)
    finally:
        db.close()


async def until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value


async def test_a_killed_process_ends_its_stretch_at_its_last_beat(tmp_path):
    (tmp_path / "config.toml").write_text("[server]\nport = 0\nadmin_port = 0\n")
    proc, _, _ = await start_serve(tmp_path, {})
    try:
        await until(lambda: any(last > start for start, last in stretches(tmp_path)), what="a beat")
    finally:
        killed_at = time.time()
        proc.kill()
        proc.wait(timeout=30)
    [(started, last)] = stretches(tmp_path)
    assert killed_at - BEAT_SECONDS - 1 <= last <= killed_at and last > started
    proc, _, _ = await start_serve(tmp_path, {})
    try:
        rows = await until(lambda: len(stretches(tmp_path)) == 2 and stretches(tmp_path), what="a new stretch")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (_, first_end), (second_start, _) = rows
    assert first_end == last and second_start >= killed_at
    assert find_gaps(rows, since=0, min_gap=0.5) == [(last, second_start)]  # 60 s in production
