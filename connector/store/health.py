"""Can the store take a write right now?  Answered within a deadline, never blocking the caller.

The probe runs on its own short-lived thread and checks what a write needs:

* the filesystem: not mounted read-only, free space left, and a small file in the data dir
  can be written and synced (a frozen or stalled filesystem blocks right here);
* the database: ``BEGIN IMMEDIATE`` with a short busy timeout (another process holding the
  write lock makes it fail), rolled back at once - nothing is written to the store.

If a probe does not finish within ``timeout`` the answer is "storage did not answer"; while
that probe is still stuck, no second one is started (one stuck thread at most).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from connector.store import faults

MIN_FREE_BYTES = 64 * 1024
PROBE_NAME = ".callsync-probe"
PROBE_BYTES = 4096  # one new block per probe: a disk without a free block fails it


def probe(db_path: str, busy_ms: int = 250, *, lock_is_ours: Callable[[], bool] = lambda: False) -> str | None:
    """``None`` when the store can take a write now, else why not (one line).  Blocking.

    ``lock_is_ours()`` tells whether a busy write lock may be our own writer's (it committed a
    moment ago): then a busy database is not reported as locked."""
    folder = Path(db_path).parent
    try:
        stat = os.statvfs(folder)
    except OSError as exc:
        return f"the data dir cannot be read: {exc.strerror or exc}"
    if stat.f_flag & os.ST_RDONLY:
        return "the data dir is on a read-only filesystem"
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"the disk is full ({free // 1024} KiB free)"
    temp, final = folder / (PROBE_NAME + ".new"), folder / PROBE_NAME
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
    except OSError as exc:
        return f"cannot write to the data dir: {exc.strerror or exc}"
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, isolation_level=None, timeout=busy_ms / 1000)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
        return None if busy and lock_is_ours() else faults.describe(exc)
    return None


class StorageProbe:
    """Runs :func:`probe` off the event loop, at most one at a time, each answer within ``timeout``;
    a result is reused for ``reuse_seconds`` so frequent health checks cost one probe."""

    def __init__(self, db_path: str, *, timeout: float = 0.8, reuse_seconds: float = 1.0,
                 lock_is_ours: Callable[[], bool] = lambda: False,
                 check: Callable[[], str | None] | None = None) -> None:
        self.db_path = str(db_path)
        self.check_now = check  # another store's check (PostgreSQL: connection.PgProbe) instead of probe()
        self.lock_is_ours = lock_is_ours
        self.timeout = timeout
        self.reuse_seconds = reuse_seconds
        self._running: concurrent.futures.Future[str | None] | None = None
        self._started = 0.0
        self._last: tuple[float, str | None] | None = None

    def _start(self) -> concurrent.futures.Future[str | None]:
        future: concurrent.futures.Future[str | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                if self.check_now is not None:
                    result = self.check_now()
                else:
                    result = probe(self.db_path, lock_is_ours=self.lock_is_ours)
            except Exception as exc:  # noqa: BLE001 - an answer, never a crash
                result = f"storage check failed: {exc}"
            self._last = (time.monotonic(), result)
            future.set_result(result)

        self._running, self._started = future, time.monotonic()
        threading.Thread(target=run, name="store-probe", daemon=True).start()
        return future

    async def check(self) -> str | None:
        """``None`` if writable, else the reason; returns within ``timeout`` seconds."""
        last = self._last
        if last is not None and time.monotonic() - last[0] < self.reuse_seconds:
            return last[1]
        running = self._running
        if running is not None and not running.done():
            stuck = time.monotonic() - self._started
            if stuck > self.timeout:
                return f"storage has not answered for {stuck:.0f} s (frozen or stalled filesystem?)"
            future = running
        else:
            future = self._start()
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout)
        except asyncio.TimeoutError:
            return f"storage did not answer within {self.timeout:g} s (frozen or stalled filesystem?)"
