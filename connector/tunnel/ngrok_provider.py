"""``provider = "ngrok"``: the official ngrok Agent SDK (the agent as a library, no binary).

The authtoken comes from keyring user ``tunnel:ngrok`` or ``NGROK_AUTHTOKEN``; ``domain`` binds the
account's static domain (a free account has one), else ngrok picks a random one.  Once connected, the
SDK reconnects by itself after a network loss; its disconnection and heartbeat callbacks (called on
the SDK's own thread) become :class:`~connector.tunnel.base.TunnelEvents` on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ngrok

from connector.tunnel.base import (
    BAD_TOKEN,
    FAILED,
    NO_ACCOUNT,
    NO_NETWORK,
    REFUSED,
    TunnelError,
    TunnelEvents,
    TunnelProvider,
)
from connector.version import VERSION

log = logging.getLogger(__name__)

TOKEN_URL = "https://dashboard.ngrok.com/get-started/your-authtoken"
SIGNUP_URL = "https://dashboard.ngrok.com/signup"
SET_TOKEN = "`callsync secret set tunnel:ngrok` (or NGROK_AUTHTOKEN)"
NO_TOKEN = (f"ngrok needs a free account: sign up at {SIGNUP_URL}, then save the authtoken from "
            f"{TOKEN_URL} with {SET_TOKEN}.")
BAD_TOKEN_CODES = ("ERR_NGROK_105", "ERR_NGROK_106", "ERR_NGROK_107", "ERR_NGROK_300")
NO_ACCOUNT_CODES = ("ERR_NGROK_4018", "ERR_NGROK_123")
# Words of the SDK's transport errors (no error code): the service could not be reached at all.
NETWORK_WORDS = ("tcp connection", "tls handshake", "dns", "timed out", "timeout", "network", "resolve",
                 "connection refused", "connection reset", "proxy")


def ngrok_error(exc: BaseException, *, domain: str = "") -> TunnelError:
    """The SDK raises ``ValueError(message, detail[, "ERR_NGROK_<n>"])``: one sentence per case."""
    args = [str(a) for a in getattr(exc, "args", ())]
    code = next((a for a in args if a.startswith("ERR_NGROK_")), "")
    detail = args[1] if len(args) > 1 else (args[0] if args else str(exc))
    first_line = " ".join(detail.strip().splitlines()[:1]) if detail.strip() else type(exc).__name__
    if code in BAD_TOKEN_CODES:
        return TunnelError(BAD_TOKEN, f"ngrok rejected the authtoken ({code}): copy it again from {TOKEN_URL} "
                                      f"and save it with {SET_TOKEN}.", retry=False)
    if code in NO_ACCOUNT_CODES:
        return TunnelError(NO_ACCOUNT, f"{NO_TOKEN[:-1]} ({code}).", retry=False)
    if code == "ERR_NGROK_108":
        return TunnelError(REFUSED, "Your ngrok account already has an agent running elsewhere (ERR_NGROK_108): "
                                    "stop it, then switch the tunnel off and on.", retry=False)
    if code:
        about = f" for the domain {domain}" if domain and "domain" in detail.lower() else ""
        return TunnelError(REFUSED, f"ngrok refused the tunnel{about} ({code}): {first_line}", retry=False)
    if any(word in detail.lower() for word in NETWORK_WORDS):
        return TunnelError(NO_NETWORK, "ngrok cannot be reached (no internet connection?): callsync keeps "
                                       "receiving locally and connects when the network is back.", retry=True)
    return TunnelError(FAILED, f"ngrok could not open the tunnel: {first_line}", retry=True)


class NgrokProvider(TunnelProvider):
    name = "ngrok"

    def __init__(self, authtoken: str | None, domain: str = "", *, server_addr: str = "") -> None:
        self.authtoken = authtoken
        self.domain = domain
        self.server_addr = server_addr  # tests and private ingress only
        self.session: Any = None
        self.listener: Any = None
        self._down = False

    async def open(self, target: str, events: TunnelEvents) -> str:
        if not self.authtoken:
            raise TunnelError(NO_ACCOUNT, NO_TOKEN, retry=False)
        loop = asyncio.get_running_loop()
        self._down = False

        def disconnected(addr: str, error: str) -> None:  # SDK thread; must never raise
            try:
                self._down = True
                loop.call_soon_threadsafe(events.down, f"lost the connection to ngrok ({error}); reconnecting")
            except Exception:  # noqa: BLE001 - loop closed while stopping
                pass

        def heartbeat(*_latency: int) -> None:  # SDK thread: the session answers again
            try:
                if self._down:
                    self._down = False
                    loop.call_soon_threadsafe(events.back)
            except Exception:  # noqa: BLE001
                pass

        builder = (ngrok.SessionBuilder().authtoken(self.authtoken).client_info("callsync", VERSION)
                   .handle_disconnection(disconnected).handle_heartbeat(heartbeat))
        if self.server_addr:
            builder = builder.server_addr(self.server_addr)
        try:
            self.session = await builder.connect()
            endpoint = self.session.http_endpoint()
            if self.domain:
                endpoint = endpoint.domain(self.domain)
            self.listener = await endpoint.listen_and_forward(f"http://{target}")
        except ValueError as exc:
            await self.close()
            raise ngrok_error(exc, domain=self.domain) from None
        return str(self.listener.url()).rstrip("/")

    async def close(self) -> None:
        listener, session = self.listener, self.session
        self.listener = self.session = None
        for part in (listener, session):
            if part is None:
                continue
            try:
                await part.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing the ngrok %s failed: %s", type(part).__name__, exc)
