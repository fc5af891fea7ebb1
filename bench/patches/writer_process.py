"""Experiment, not product code: the receiver's events stored by a writer *process*.

    .venv/bin/python bench/run.py receiver --variants b,c --connections 64 --patch bench/patches/writer_process.py

Loaded with ``--patch`` into the benchmark's servers, it replaces ``StoreWriter.store`` in
(c): events go, pickled as plain tuples, over a socketpair to a child process (this file run
as a script) that stores them with the writer's own code (``StoreWriter._store_events``: the
same lookup + one-statement write, the outbox hook included) on its own connection and
answers after the commit; one batch in flight, the next one gathering meanwhile (group
commit).  The in-process writer thread still owns the connection for everything else.

It measures what moving SQLite and the writer's Python out of the server's GIL would give,
for the decision issue 3's target needs (the window must stay one process; ``execute(fn)``
closures cannot cross a process boundary).  Not wired into callsync.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def child(fd: int, path: str) -> None:
    from connector.model import CallEvent
    from connector.store.writer import Incoming, StoreWriter, open_write_connection
    from connector.sync.outbox import jobs_on_outcome

    sock = socket.socket(fileno=fd)
    conn = open_write_connection(path)
    writer = StoreWriter(path, hooks=[jobs_on_outcome])
    while True:
        try:
            (size,) = struct.unpack("!I", _recv_exact(sock, 4))
        except EOFError:
            return
        items = [Incoming(source, CallEvent(*event), body, content_type, headers, at)
                 for source, event, body, content_type, headers, at in pickle.loads(_recv_exact(sock, size))]
        try:
            reply: list[Any] = [(True, (v.duplicate, v.event_id)) for v in writer._store_events(conn, items, Counter())]
        except Exception as exc:  # noqa: BLE001 - answered as a failure of every item
            reply = [(False, str(exc))] * len(items)
        data = pickle.dumps(reply, protocol=5)
        sock.sendall(struct.pack("!I", len(data)) + data)


def install() -> None:
    from connector.store import writer as store_writer

    state: dict[str, Any] = {}

    async def pump() -> None:
        reader, writer = await asyncio.open_connection(sock=state["sock"])
        while True:
            await state["wake"].wait()
            state["wake"].clear()
            while state["pending"]:
                batch, state["pending"] = state["pending"], []
                data = pickle.dumps([
                    (i.source, tuple(getattr(i.event, f) for f in i.event._field_names()), i.body,
                     i.content_type, i.headers, i.received_at) for i, _ in batch], protocol=5)
                writer.write(struct.pack("!I", len(data)) + data)
                (size,) = struct.unpack("!I", await reader.readexactly(4))
                for (item, fut), (ok, value) in zip(batch, pickle.loads(await reader.readexactly(size))):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(store_writer.Stored(value[0], value[1], item.source, item.event, None, None,
                                                           item.received_at))
                    else:
                        fut.set_exception(RuntimeError(value))

    def store(self: Any, item: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if "process" not in state:
            parent, child_end = socket.socketpair()
            state["process"] = subprocess.Popen(
                [sys.executable, __file__, str(child_end.fileno()), self.path], pass_fds=[child_end.fileno()], cwd=ROOT)
            child_end.close()
            state.update(sock=parent, pending=[], wake=asyncio.Event())
            state["task"] = loop.create_task(pump())
        fut: asyncio.Future[Any] = loop.create_future()
        state["pending"].append((item, fut))
        state["wake"].set()
        return fut

    store_writer.StoreWriter.store = store  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(int(sys.argv[1]), sys.argv[2])
else:
    install()
