"""Admin listener (loopback only): health, metrics, events and calls as JSON.

Routes that change state are added by other parts (the sync worker's replay,
``connector/sync/admin_routes.py``) onto the same app; they are wrapped by
:func:`require_token`.  Every request, whatever its route, must name the loopback
host in its ``Host`` header (:func:`loopback_host_only`): a web page that rebinds
its own DNS name to 127.0.0.1 cannot read or change anything (DNS rebinding).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from connector.store import calls as store_calls
from connector.store import events as store_events

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INT64_MAX = 2**63 - 1
# 127.0.0.1, localhost or [::1], with or without a port; nothing else (case-insensitive).
LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?", re.IGNORECASE)


def is_loopback_host(host: str | None) -> bool:
    return bool(host) and LOOPBACK_HOST.fullmatch(host) is not None  # type: ignore[arg-type]


@web.middleware
async def loopback_host_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 before any route runs unless the Host header names the loopback host (DNS rebinding)."""
    if not is_loopback_host(request.headers.get("Host")):
        return web.json_response({"error": "the admin API answers only to Host 127.0.0.1, localhost or [::1]"},
                                 status=403)
    return await handler(request)


def _int(request: web.Request, key: str, default: int | None) -> int | None:
    raw = request.query.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key} must be an integer") from None
    if abs(value) > INT64_MAX:
        raise web.HTTPBadRequest(text=f"{key} is out of range")
    return value


def require_token(token_for: Callable[[], str | None], handler: Handler) -> Handler:
    """Bearer-token check for mutating admin routes (constant-time compare)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        expected = token_for()
        given = request.headers.get("Authorization", "")
        if not expected:
            return web.json_response({"error": "admin token not configured"}, status=503)
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), expected.encode()):
            return web.json_response({"error": "missing or wrong admin token"}, status=401)
        return await handler(request)

    return guarded


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Client errors as JSON with a reason, like every other admin answer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        retry = {"Retry-After": exc.headers["Retry-After"]} if "Retry-After" in exc.headers else None
        return web.json_response({"error": exc.text or exc.reason}, status=exc.status, headers=retry)


class AdminApi:
    def __init__(self, service: Any) -> None:
        self.service = service  # connector.app.Service: metrics(), reader, health()
        self.app = web.Application(middlewares=[loopback_host_only, json_errors])
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/api/metrics", self.metrics)
        self.app.router.add_get("/metrics", self.prometheus)
        self.app.router.add_get("/api/events", self.events)
        self.app.router.add_get("/api/events/{id:\\d+}", self.event)
        self.app.router.add_get("/api/calls", self.calls)
        self.app.router.add_get("/api/calls/{source}/{call_id}", self.call)

    async def healthz(self, request: web.Request) -> web.Response:
        health = await self.service.health()
        return web.json_response(health, status=200 if health["ok"] else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.json_response(await self.service.metrics())

    async def prometheus(self, request: web.Request) -> web.Response:
        """The same figures in Prometheus text format (plus latency histograms and CRM requests by status)."""
        body, content_type = self.service.prom.render(await self.service.metrics())
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def events(self, request: web.Request) -> web.Response:
        page = await self.service.reader.run(
            store_events.list_events,
            call_id=request.query.get("call_id"),
            phone=request.query.get("phone"),
            event_type=request.query.get("type"),
            source=request.query.get("source"),
            outcome=request.query.get("outcome"),
            before_id=_int(request, "before_id", None),
            limit=_int(request, "limit", 50),
        )
        return web.json_response(page)

    async def event(self, request: web.Request) -> web.Response:
        event_id = int(request.match_info["id"])
        if event_id > INT64_MAX:
            return web.json_response({"error": "no such event"}, status=404)
        event = await self.service.reader.run(store_events.get_event, event_id)
        if event is None:
            return web.json_response({"error": "no such event"}, status=404)
        return web.json_response(event)

    async def calls(self, request: web.Request) -> web.Response:
        rows = await self.service.reader.run(store_calls.list_calls, limit=_int(request, "limit", 50))
        return web.json_response({"calls": rows})

    async def call(self, request: web.Request) -> web.Response:
        call = await self.service.reader.run(store_calls.get_call, request.match_info["source"], request.match_info["call_id"])
        if call is None:
            return web.json_response({"error": "no such call"}, status=404)
        return web.json_response(call)
