"""``GET /api/tunnel`` on the admin listener: ``{"provider", "state", "public_url", "error"}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def add_tunnel_routes(app: web.Application, service: Any) -> None:
    async def tunnel(request: web.Request) -> web.Response:
        return web.json_response(service.tunnel.status())

    app.router.add_get("/api/tunnel", tunnel)
