"""The hooks listener's socket, with limits: slow or idle clients cannot exhaust file descriptors.

* **Header timeout**: a connection that has not sent complete request headers within
  ``header_timeout`` seconds of connecting is closed (a client sending half a header and
  stalling).  Later requests on a keep-alive connection are bounded by the idle timeout:
  aiohttp closes a connection still waiting for a complete request when it expires.
* **Idle timeout**: aiohttp's ``keepalive_timeout``.
* **Connection cap**: beyond ``max_connections`` open connections a new one is answered
  ``503`` (``Retry-After``) and closed at once.
* **Out of descriptors**: we accept connections ourselves (``loop.sock_accept``) instead of
  asyncio's server, which logs a traceback for every failed ``accept`` (tens of thousands
  a minute at ``EMFILE``).  Here a failed accept waits ``ACCEPT_RETRY_SECONDS`` and the log
  gets one line per ``LOG_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

ACCEPT_RETRY_SECONDS = 0.5
LOG_INTERVAL_SECONDS = 10.0
ACCEPT_BURST = 64
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_BUSY_BODY = b'{"status": "error", "reason": "too_many_connections", "error": "too many open connections; retry"}'
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class RateLimitedLog:
    """One log line per ``interval`` for a repeating condition, with how often it happened."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last = -float("inf")
        self._count = 0

    def note(self, message: str, *args: Any) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            log.warning(message + " (%d times in the last %.0f s)", *args, self._count, self.interval)
            self._last, self._count = now, 0


class _LimitedHandler(RequestHandler):
    """aiohttp's request handler, closed when the first request's headers are late."""

    def __init__(self, manager: Any, *, header_timeout: float, on_lost: Any, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._on_lost = on_lost
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            seen = self._head_tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:  # end of the headers (bare LF tolerated)
                self._head_timer.cancel()
                self._head_timer, self._head_tail = None, b""
            else:
                self._head_tail = seen[-3:]
        super().data_received(data)

    def _headers_late(self) -> None:
        self._head_timer = None
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        on_lost, self._on_lost = self._on_lost, None
        try:
            super().connection_lost(exc)
        finally:
            if on_lost is not None:
                on_lost()


class HooksListener:
    """Serves ``app`` on ``host:port`` with the limits above; ``start()`` returns the bound port."""

    def __init__(self, app: web.Application, host: str, port: int, *, header_timeout: float = 10.0,
                 idle_timeout: float = 30.0, max_connections: int = 256, backlog: int = 128,
                 reuse_port: bool = False) -> None:
        self.app, self.host, self.port = app, host, port
        self.reuse_port = reuse_port  # several processes on one port (serve --workers): the kernel spreads connections
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.max_connections, self.backlog = max_connections, backlog
        self.open_connections = 0
        self.refused = 0
        self.runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._exhausted_log = RateLimitedLog()
        self._refused_log = RateLimitedLog()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                    keepalive_timeout=self.idle_timeout)
        await self.runner.setup()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._task = loop.create_task(self._accept_loop(sock), name="hooks-accept")
        return sock.getsockname()[1]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                await self._accept_failed(exc)
                continue
            self._serve(loop, conn)
            for _ in range(ACCEPT_BURST):  # take what else is waiting without a loop round-trip each
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    await self._accept_failed(exc)
                    break
                self._serve(loop, conn)

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in OUT_OF_RESOURCES:
            self._exhausted_log.note(
                "hooks listener: cannot accept connections: %s; raise the open-file limit (ulimit -n) "
                "or lower [server] max_connections", exc.strerror or exc)
            await asyncio.sleep(ACCEPT_RETRY_SECONDS)
        elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
            log.warning("hooks listener: accept failed: %s", exc)
            await asyncio.sleep(ACCEPT_RETRY_SECONDS)

    def _serve(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        conn.setblocking(False)
        if self.open_connections >= self.max_connections:
            self.refused += 1
            self._refused_log.note("hooks listener: %d connections open (max_connections), refusing more",
                                   self.open_connections)
            try:
                conn.send(BUSY_ANSWER)
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
            return
        assert self.runner is not None and self.runner.server is not None
        self.open_connections += 1
        handler = _LimitedHandler(self.runner.server, loop=loop, header_timeout=self.header_timeout,
                                  on_lost=self._lost, keepalive_timeout=self.idle_timeout, access_log=None,
                                  lingering_time=self.header_timeout)  # unread body of a refused request
        loop.create_task(self._connect(loop, conn, handler))

    async def _connect(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, handler: _LimitedHandler) -> None:
        try:
            await loop.connect_accepted_socket(lambda: handler, conn)
        except Exception as exc:  # noqa: BLE001 - the client went away, or no memory for a transport
            log.debug("hooks listener: connection dropped at set-up: %s", exc)
            conn.close()
            if handler._on_lost is not None:
                handler._on_lost = None
                self._lost()

    def _lost(self) -> None:
        self.open_connections -= 1
