"""A public HTTPS URL for the hooks listener (ngrok SDK or cloudflared), its state, and the
"test from outside" round trip.  Qt-free."""

from connector.tunnel.base import TunnelError, TunnelEvents, TunnelProvider
from connector.tunnel.manager import STATES, Tunnel, change_notice, default_providers
from connector.tunnel.settings import NGROK_TOKEN_USER, PROVIDERS, TunnelSettings, parse_tunnel

__all__ = ["NGROK_TOKEN_USER", "PROVIDERS", "STATES", "Tunnel", "TunnelError", "TunnelEvents", "TunnelProvider",
           "TunnelSettings", "change_notice", "default_providers", "parse_tunnel"]
