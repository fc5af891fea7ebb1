"""Loopback HTTP servers standing in for a dialer's API and an Apprise ``json://`` sink."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the sink answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """Records every request; answers ``fail_with`` to the first ``failures`` of them."""

    failures: int = 0
    fail_with: int = 503
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(time.monotonic(), request.method, request.path_qs, dict(request.headers),
                            await request.read())
        self.requests.append(received)
        if self.failures > 0:
            self.failures -= 1
            received.status = self.fail_with
            return web.Response(status=self.fail_with, text="try later")
        return web.json_response({"ok": True})

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def start(self, port: int = 0) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
