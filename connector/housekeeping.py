"""Background housekeeping: raw payloads older than ``[retention] raw_payload_days`` are dropped at
start-up and then hourly, in small batches through the store writer, and the freed space is given
back to the operating system."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from connector.store import retention

log = logging.getLogger(__name__)
DAY = 86400.0


class Retention:
    def __init__(self, writer: Any, days: int, *, interval: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.days = days
        self.interval = interval
        self.clock = clock
        self.dropped = 0  # raw payloads dropped by this process
        self.last_run: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None

    async def start(self) -> None:
        if self.days <= 0:
            return  # 0 keeps raw payloads for ever
        self._kick = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def run_now(self) -> None:
        if self._kick is not None:
            self._kick.set()

    async def _loop(self) -> None:
        assert self._kick is not None
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage trouble: try again at the next round
                log.warning("retention: could not drop old payloads now: %s", exc)
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def run_once(self) -> int:
        """Drop every raw payload older than the cut, batch by batch; returns how many."""
        cut = self.clock() - self.days * DAY
        total = 0
        while True:
            n = await self.writer.execute(lambda conn: retention.drop_raw_payloads(conn, cut))
            total += n
            if n < retention.BATCH:
                break
            await asyncio.sleep(0)  # webhooks go first: one small transaction at a time
        if total:
            await self.writer.execute(retention.give_back_space)
            log.info("retention: dropped the raw payloads of %d events received over %d days ago", total, self.days)
        self.dropped += total
        self.last_run = self.clock()
        return total
