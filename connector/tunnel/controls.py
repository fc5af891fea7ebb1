"""What the window may ask and do about the tunnel (Qt-free, like ``connector.facade``): its state,
the switch (remembered in config.toml, the same as ``serve --tunnel``), the ngrok authtoken, and
"test from outside"."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import keyring.errors

from connector import config_edit, secrets
from connector.tunnel.outside import OutsideResult, test_from_outside
from connector.tunnel.settings import NGROK_TOKEN_USER, TunnelSettings, parse_tunnel
from connector.window_views import SecretStoreUnavailable

STATE_WORDS = {"off": "Off", "connecting": "Connecting…", "up": "Up", "error": "Not connected"}


@dataclass(slots=True)
class TunnelView:
    provider: str  # the configured provider, "" without a [tunnel] table
    enabled: bool  # the switch
    domain: str
    tunnel_name: str
    state: str  # off | connecting | up | error
    public_url: str | None  # the tunnel's
    error: str | None  # one sentence
    notice: str | None  # the URL changed since the last run: what to tell the dialer
    effective_url: str  # what senders are given: [server] public_url, else the tunnel's, else ""
    has_token: bool  # ngrok authtoken found (keyring or NGROK_AUTHTOKEN)
    token_env: str
    token_from_env: bool

    @property
    def headline(self) -> str:
        """One line for the dashboard and Sources."""
        name = self.provider or "tunnel"
        if not self.provider or not self.enabled:
            return "Public URL: off — senders on the internet cannot reach this machine until you switch it on."
        if self.state == "up":
            return f"Public URL ({name}): {self.public_url}"
        if self.state == "error":
            return f"Public URL ({name}) not connected: {self.error} The local receiver keeps running."
        return f"Public URL ({name}): connecting…" + (f" {self.error}" if self.error else "")


class TunnelControls:
    def __init__(self, service: Any) -> None:
        self.service = service

    def view(self) -> TunnelView:
        tunnel = self.service.tunnel
        settings: TunnelSettings = tunnel.settings
        value, where = secrets.lookup(NGROK_TOKEN_USER)
        return TunnelView(
            provider=settings.provider, enabled=settings.active, domain=settings.domain,
            tunnel_name=settings.tunnel_name, state=tunnel.state, public_url=tunnel.public_url, error=tunnel.error,
            notice=tunnel.notice, effective_url=self.service.public_url(), has_token=bool(value),
            token_env=secrets.env_name(NGROK_TOKEN_USER), token_from_env=where == "environment")

    async def set_enabled(self, enabled: bool, *, provider: str | None = None, domain: str | None = None) -> TunnelView:
        """The window's switch: written to ``[tunnel]`` (validated first: a bad domain raises ConfigError and
        changes nothing), then applied to the running tunnel."""
        current: TunnelSettings = self.service.config.tunnel
        chosen = provider or current.provider or "ngrok"
        values: dict[str, Any] = {"provider": chosen, "enabled": enabled}
        if domain is not None:
            values["domain"] = domain.strip() or None
        if chosen != current.provider and domain is None:
            values["domain"] = None
        if chosen != "cloudflared":
            values["tunnel_name"] = None
        data = config_edit.set_tunnel(self.service.config.config_path, **values)
        settings = parse_tunnel(data.get("tunnel", {}))
        self.service.config.tunnel = settings
        self.service.config.raw = data
        await self.service.tunnel.apply(replace(settings))
        return self.view()

    def save_authtoken(self, token: str) -> None:
        """The ngrok authtoken into the OS keyring (user ``tunnel:ngrok``); a tunnel in error tries again."""
        token = token.strip()
        if not token:
            raise ValueError("the authtoken is empty")
        usable, message = secrets.keyring_usable()
        env = secrets.env_name(NGROK_TOKEN_USER)
        if not usable:
            raise SecretStoreUnavailable(f"{message} Set {env} instead.")
        try:
            secrets.set_secret(NGROK_TOKEN_USER, token)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreUnavailable(f"The OS keyring refused the authtoken ({exc}). Set {env} instead.") from exc
        tunnel = self.service.tunnel
        if tunnel.settings.provider == "ngrok" and tunnel.state in ("error", "connecting"):
            tunnel.retry_now()

    async def test_from_outside(self, source: str | None = None) -> OutsideResult:
        return await test_from_outside(self.service, source)
