"""A local stand-in for the tunnel providers' services (ngrok, Cloudflare cannot be reached from here).

Behind the real :class:`~connector.tunnel.base.TunnelProvider` interface it runs an aiohttp reverse
proxy on another loopback port: every request to its "public URL" is forwarded as real HTTP to the
target callsync opened it for (the hooks listener), with the ``X-Forwarded-*`` headers a tunnel adds.
A :class:`StandIn` controls what the "internet" does: whether the service can be reached (a refusal is
the real ngrok SDK's error, mapped by callsync's own code), dropping the connection, and whether a
reopen gets the same address or a new one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from connector.tunnel.base import TunnelEvents, TunnelProvider
from connector.tunnel.ngrok_provider import ngrok_error

HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length"}
# What the ngrok SDK raises when its service cannot be reached (seen with no network on this machine).
SDK_NO_NETWORK = ("failed to connect session", "failed to establish tcp connection")


@dataclass
class StandIn:
    """The 'internet' for every stand-in tunnel a test opens (callsync creates one per attempt)."""

    network: bool = True
    sdk_error_args: tuple[str, ...] | None = None  # the SDK's ValueError args to fail with (e.g. a bad token)
    new_address_on_reopen: bool = False
    name: str = "ngrok"
    opened: list[str] = field(default_factory=list)  # targets callsync asked to forward to
    forwarded: list[str] = field(default_factory=list)  # paths that went through
    attempts: int = 0
    current: StandInTunnel | None = None
    _port: int = 0

    def factory(self, settings: object) -> StandInTunnel:
        return StandInTunnel(self)

    async def drop(self, *, self_healing: bool = False) -> None:
        """The connection to the service is lost: the proxy stops answering.  A self-healing provider
        (the ngrok SDK) reports ``down``; one whose process died reports ``ended``."""
        tunnel = self.current
        assert tunnel is not None and tunnel.events is not None
        await tunnel.stop_proxy()
        if self_healing:
            tunnel.events.down("lost the connection to the stand-in service; reconnecting")
        else:
            tunnel.events.ended("the stand-in tunnel process exited")

    async def heal(self) -> None:
        """A self-healing provider reconnected: same address, answering again."""
        tunnel = self.current
        assert tunnel is not None and tunnel.events is not None and tunnel.target
        await tunnel.start_proxy(tunnel.target)
        tunnel.events.back()


class StandInTunnel(TunnelProvider):
    def __init__(self, control: StandIn) -> None:
        self.control = control
        self.name = control.name
        self.events: TunnelEvents | None = None
        self.target: str | None = None
        self.runner: web.AppRunner | None = None
        self.client: aiohttp.ClientSession | None = None

    async def open(self, target: str, events: TunnelEvents) -> str:
        control = self.control
        control.attempts += 1
        if not control.network:
            raise ngrok_error(ValueError(*SDK_NO_NETWORK))
        if control.sdk_error_args:
            raise ngrok_error(ValueError(*control.sdk_error_args))
        self.events, self.target = events, target
        control.opened.append(target)
        control.current = self
        return await self.start_proxy(target)

    async def start_proxy(self, target: str) -> str:
        control = self.control
        self.client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = 0 if control.new_address_on_reopen or not control._port else control._port
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        control._port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{control._port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self.client is not None and self.target is not None
        self.control.forwarded.append(request.path)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers |= {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": request.host}
        body = await request.read()
        async with self.client.request(request.method, f"http://{self.target}{request.path_qs}", headers=headers,
                                       data=body, allow_redirects=False) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def stop_proxy(self) -> None:
        runner, client = self.runner, self.client
        self.runner = self.client = None
        if runner is not None:
            await runner.cleanup()
        if client is not None:
            await client.close()

    async def close(self) -> None:
        await self.stop_proxy()
        if self.control.current is self:
            self.control.current = None
        await asyncio.sleep(0)
