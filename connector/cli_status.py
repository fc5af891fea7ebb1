"""``callsync status`` (the running instance's health and tunnel, through its admin API) and the
command line's side of the tunnel: ``serve --tunnel`` and the lines ``serve`` prints when it changes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from connector.config import Config
from connector.tunnel.settings import PROVIDERS, parse_tunnel

NOT_RUNNING = 3  # like `systemctl status`: the program is not running


def tunnel_provider(text: str) -> str:
    """``--tunnel`` alone (the configured provider, else ngrok) or ``--tunnel ngrok|cloudflared``."""
    if text and text not in PROVIDERS:
        raise argparse.ArgumentTypeError(f"the tunnel provider is one of {', '.join(PROVIDERS)}, got {text!r}")
    return text


def enable_tunnel(config: Config, provider: str) -> None:
    """``serve --tunnel``: the same as the window's switch, remembered in config.toml."""
    from connector import config_edit

    chosen = provider or config.tunnel.provider or "ngrok"
    values: dict[str, Any] = {"provider": chosen, "enabled": True}
    if chosen != config.tunnel.provider:  # another provider's domain / tunnel name do not apply
        values |= {"domain": None, "tunnel_name": None}
    data = config_edit.set_tunnel(config.config_path, **values)
    config.tunnel = parse_tunnel(data.get("tunnel", {}))
    config.raw = data


def tunnel_printer(tunnel: Any) -> Any:
    """A tunnel listener for ``serve``: one line when it comes up (and what to tell the dialer when
    its URL changed), when it fails, and when it reconnects."""

    def show(status: dict[str, Any]) -> None:
        provider = status["provider"]
        if status["state"] == "up":
            print(f"callsync: tunnel ({provider}) up: public URL {status['public_url']}", flush=True)
            if tunnel.notice:
                print(f"callsync: {tunnel.notice}", flush=True)
        elif status["state"] == "error":
            print(f"callsync: tunnel ({provider}): {status['error']} (the local receiver keeps running)", flush=True)
        elif status["state"] == "connecting" and status["error"]:
            print(f"callsync: tunnel ({provider}): {status['error']}", flush=True)

    return show


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as resp:
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = {}
        return resp.status, body if isinstance(body, dict) else {}


async def fetch_status(admin_port: int) -> dict[str, Any] | None:
    """Health and tunnel of the callsync on this admin port; None when nothing answers."""
    base = f"http://127.0.0.1:{admin_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            health_status, health = await _get(http, f"{base}/healthz")
            tunnel_status, tunnel = await _get(http, f"{base}/api/tunnel")
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
        return None
    if "ok" not in health:
        return None  # something else answers on that port
    return {"health": health, "tunnel": tunnel if tunnel_status == 200 else None}


def status_lines(status: dict[str, Any], admin_port: int) -> list[str]:
    health, tunnel = status["health"], status["tunnel"]
    lines = [f"callsync is running (admin API on 127.0.0.1:{admin_port})",
             "health: ok" if health.get("ok") else f"health: NOT OK: {health.get('reason')}"]
    if not tunnel or not tunnel.get("provider"):
        lines.append("tunnel: none ([tunnel] in config.toml, `callsync serve --tunnel` or the window's switch)")
    elif tunnel["state"] == "up":
        lines.append(f"tunnel: {tunnel['provider']} up, public URL {tunnel['public_url']}")
    elif tunnel["state"] == "off":
        lines.append(f"tunnel: {tunnel['provider']} off")
    else:
        reason = f": {tunnel['error']}" if tunnel.get("error") else ""
        lines.append(f"tunnel: {tunnel['provider']} {tunnel['state']}{reason}")
    return lines


def status_command(config: Config, *, as_json: bool = False) -> int:
    """0: running and healthy (and its tunnel, if any, up); 1: running with a problem; 3: not running."""
    port = config.server.admin_port
    status = asyncio.run(fetch_status(port))
    if status is None:
        if as_json:
            print(json.dumps({"running": False, "admin_port": port}))
        else:
            print(f"callsync is not running (nothing answers on its admin port 127.0.0.1:{port})")
        return NOT_RUNNING
    if as_json:
        print(json.dumps({"running": True, "admin_port": port} | status))
    else:
        print("\n".join(status_lines(status, port)))
    tunnel = status["tunnel"] or {}
    healthy = bool(status["health"].get("ok")) and tunnel.get("state") in (None, "off", "up")
    sys.stdout.flush()
    return 0 if healthy else 1
