"""``provider = "cloudflared"``: Cloudflare's ``cloudflared`` executable, started and stopped by callsync.

Without ``tunnel_name`` it opens a quick tunnel (``cloudflared tunnel --url ...``) and reads the random
``https://<words>.trycloudflare.com`` address from its log; with ``tunnel_name`` it runs that named
tunnel (``cloudflared tunnel run --url ... NAME``), whose address is ``https://<domain>``.  It is up once
cloudflared logs a registered connection.  cloudflared logs to stderr; its lines also tell when a
connection drops and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import Sequence

from connector.tunnel.base import FAILED, NO_ACCOUNT, NO_NETWORK, NOT_INSTALLED, TunnelError, TunnelEvents, \
    TunnelProvider

log = logging.getLogger(__name__)

DOWNLOAD_URL = "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"
NOT_FOUND = (f"cloudflared is not installed (no cloudflared on PATH): install it from {DOWNLOAD_URL} "
             "or use provider = \"ngrok\".")
QUICK_URL = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com")
REGISTERED = "registered tunnel connection"
DROPPED = ("connection terminated", "unregistered tunnel connection", "retrying connection",
           "failed to serve tunnel connection", "connection with edge closed")
NETWORK_WORDS = ("no such host", "dial tcp", "network is unreachable", "i/o timeout", "failed to request quick tunnel",
                 "connection refused", "temporary failure in name resolution", "context deadline exceeded")
LOGIN_WORDS = ("cert.pem", "origin certificate", "credentials file", "tunnel credentials", "cloudflared tunnel login")
START_TIMEOUT = 45.0  # seconds from start to a registered connection


def classify_exit(lines: Sequence[str], returncode: int | None, tunnel_name: str = "") -> TunnelError:
    """Why cloudflared stopped before the tunnel was up, from its last log lines."""
    text = "\n".join(lines).lower()
    errors = [line for line in lines if " err " in f" {line.lower()} " or "error" in line.lower()]
    last = " ".join((errors or list(lines) or [""])[-1].split())[:200]
    if any(word in text for word in LOGIN_WORDS):
        name = tunnel_name or "NAME"
        return TunnelError(NO_ACCOUNT, f"The named tunnel needs a Cloudflare login: run `cloudflared tunnel login` "
                                       f"and `cloudflared tunnel create {name}` once.", retry=False)
    if any(word in text for word in NETWORK_WORDS):
        return TunnelError(NO_NETWORK, "Cloudflare cannot be reached (no internet connection?): callsync keeps "
                                       "receiving locally and connects when the network is back.", retry=True)
    code = f" (exit status {returncode})" if returncode is not None else ""
    return TunnelError(FAILED, f"cloudflared stopped{code}: {last or 'no output'}", retry=True)


def command(executable: str, target: str, tunnel_name: str = "") -> list[str]:
    url = f"http://{target}"
    if tunnel_name:
        return [executable, "tunnel", "--no-autoupdate", "run", "--url", url, tunnel_name]
    return [executable, "tunnel", "--no-autoupdate", "--url", url]


class CloudflaredProvider(TunnelProvider):
    name = "cloudflared"

    def __init__(self, tunnel_name: str = "", domain: str = "", *, executable: str = "cloudflared") -> None:
        self.tunnel_name = tunnel_name
        self.domain = domain
        self.executable = executable
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self, target: str, events: TunnelEvents) -> str:
        path = shutil.which(self.executable)
        if path is None:
            raise TunnelError(NOT_INSTALLED, NOT_FOUND, retry=False)
        self._closing = False
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command(path, target, self.tunnel_name), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise TunnelError(FAILED, f"cloudflared could not be started: {exc.strerror or exc}", retry=False) from None
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(self.process, ready, events))
        try:
            return await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except asyncio.TimeoutError:
            ready.cancel()
            await self.close()
            raise TunnelError(NO_NETWORK, f"cloudflared did not connect within {START_TIMEOUT:g} s (no internet "
                                          "connection?): callsync keeps receiving locally and tries again.",
                              retry=True) from None
        except TunnelError:
            await self.close()
            raise

    async def _read(self, process: asyncio.subprocess.Process, ready: asyncio.Future[str],
                    events: TunnelEvents) -> None:
        assert process.stderr is not None
        lines: list[str] = []
        url = f"https://{self.domain}" if self.tunnel_name else ""
        connected = False
        async for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            lines = (lines + [line])[-40:]
            lower = line.lower()
            log.debug("cloudflared: %s", line)
            if not url and (found := QUICK_URL.search(line)):
                url = found.group(0)
            if REGISTERED in lower and url:
                if not ready.done():
                    ready.set_result(url)
                elif not connected:
                    events.back()
                connected = True
            elif connected and any(word in lower for word in DROPPED):
                connected = False
                events.down(f"cloudflared lost its connection ({' '.join(line.split())[-160:]}); reconnecting")
        returncode = await process.wait()
        if not ready.done():
            ready.set_exception(classify_exit(lines, returncode, self.tunnel_name))
        elif not self._closing:
            events.ended(classify_exit(lines, returncode, self.tunnel_name).message)

    async def close(self) -> None:
        self._closing = True
        process, reader = self.process, self._reader
        self.process = self._reader = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(reader, 5)
