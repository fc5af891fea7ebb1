"""``[tunnel]``: the public HTTPS URL callsync opens for its hooks listener.

```toml
[tunnel]
provider = "ngrok"            # ngrok | cloudflared
enabled = true                # false keeps it off (the table stays for the window's switch)
domain = ""                   # ngrok: your static domain (name.ngrok-free.app); cloudflared named tunnel: its hostname
tunnel_name = ""              # cloudflared: a named tunnel (`cloudflared tunnel create NAME`); "" = a quick tunnel
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PROVIDERS = ("ngrok", "cloudflared")
NGROK_TOKEN_USER = "tunnel:ngrok"  # keyring user of the ngrok authtoken (or NGROK_AUTHTOKEN)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_TUNNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(slots=True)
class TunnelSettings:
    provider: str = ""  # "" = no [tunnel] table: no tunnel
    enabled: bool = True
    domain: str = ""
    tunnel_name: str = ""

    @property
    def active(self) -> bool:
        """Whether the tunnel starts with callsync."""
        return bool(self.provider) and self.enabled


def parse_tunnel(table: Any) -> TunnelSettings:
    from connector.config import ConfigError, check_keys

    if not isinstance(table, dict):
        raise ConfigError("tunnel must be a table ([tunnel])")
    check_keys(table, TunnelSettings.__dataclass_fields__, "[tunnel]")
    values: dict[str, Any] = {}
    for key, kind in (("provider", str), ("enabled", bool), ("domain", str), ("tunnel_name", str)):
        if key in table:
            if not isinstance(table[key], kind):
                raise ConfigError(f"tunnel.{key} must be {kind.__name__}, got {table[key]!r}")
            values[key] = table[key].strip() if kind is str else table[key]
    settings = TunnelSettings(**values)
    if table and not settings.provider:
        raise ConfigError(f"tunnel.provider is required: one of {', '.join(PROVIDERS)}")
    if settings.provider and settings.provider not in PROVIDERS:
        raise ConfigError(f"tunnel.provider must be one of {', '.join(PROVIDERS)}; got {settings.provider!r}")
    domain = settings.domain
    if domain and (domain.startswith(("http://", "https://")) or not _HOSTNAME.match(domain)):
        raise ConfigError(f"tunnel.domain must be a host name such as name.ngrok-free.app (no https://); got {domain!r}")
    if settings.tunnel_name:
        if settings.provider != "cloudflared":
            raise ConfigError("tunnel.tunnel_name applies to provider = \"cloudflared\" only")
        if not _TUNNEL_NAME.match(settings.tunnel_name):
            raise ConfigError(f"tunnel.tunnel_name must be a cloudflared tunnel name; got {settings.tunnel_name!r}")
        if not domain:
            raise ConfigError("tunnel.domain is required with tunnel_name: the hostname routed to the named tunnel "
                              "(`cloudflared tunnel route dns NAME HOSTNAME`)")
    elif domain and settings.provider == "cloudflared":
        raise ConfigError("tunnel.domain with provider = \"cloudflared\" needs tunnel_name (a quick tunnel "
                          "gets a random trycloudflare.com address)")
    return settings
