"""The sync worker stops promptly whatever it is doing."""

from __future__ import annotations

import asyncio

from connector.store.reader import StoreReader
from connector.store.writer import StoreWriter
from connector.sync.settings import GhlSettings
from connector.sync.worker import SyncWorker


async def test_stop_wins_over_a_wake_up_arriving_at_the_same_moment(tmp_path):
    writer = StoreWriter(str(tmp_path / "s.db"))
    writer.start()
    reader = StoreReader(str(tmp_path / "s.db"))
    worker = SyncWorker(writer, reader, GhlSettings())  # not configured: the dispatcher idles
    try:
        for _ in range(20):
            await worker.start()
            await asyncio.sleep(0.01)
            worker._wake.set()  # a job finishing exactly while we stop
            await asyncio.wait_for(worker.stop(), 3)
            assert worker._task is None
            worker._stopping = False
    finally:
        reader.close()
        writer.stop()
