"""Read side of the store: its own connections (one per reader thread), never the writer's.

Every query is a plain function of a :class:`~connector.store.db.Db` in the store's modules
(``events``, ``calls``, ``jobs``, ``stats``, ``contacts``), so the admin API, the window's facade and
the CLI share them; :class:`StoreReader` runs them off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from connector.store.db import Db, StoreTarget, open_db

T = TypeVar("T")


class StoreReader:
    def __init__(self, target: StoreTarget | str | Path, *, threads: int = 2) -> None:
        self.target = target if isinstance(target, StoreTarget) else StoreTarget.sqlite(target)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store-reader")
        self._conns: list[Db] = []
        self._lock = threading.Lock()

    def connection(self) -> Db:
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_db(self.target, readonly=True)
            self._local.db = db
            with self._lock:
                self._conns.append(db)
        return db

    def query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a query function synchronously in the calling thread."""
        return fn(self.connection(), *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.query(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for db in self._conns:
                db.close()
            self._conns.clear()
