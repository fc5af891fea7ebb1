"""Admin API routes of the sync worker: dead letters, delivery log, replay (token required)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from connector import secrets
from connector.admin.api import require_token
from connector.sync import queries as sq

ADMIN_TOKEN_USER = "admin:token"


def parse_time(value: Any, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be ISO 8601, e.g. 2026-06-04T09:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()


def replay_selection(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of POST /api/replay -> keyword arguments of ``outbox.replay``."""
    selection: dict[str, Any] = {}
    if body.get("dead"):
        selection["dead"] = True
    if body.get("call"):
        source, _, call_id = str(body["call"]).partition("/")
        if not source or not call_id:
            raise web.HTTPBadRequest(text="call must be SOURCE/CALL_ID")
        selection |= {"source": source, "call_id": call_id}
    if body.get("job_ids"):
        selection["job_ids"] = [int(i) for i in body["job_ids"]]
    since, until = parse_time(body.get("since"), "since"), parse_time(body.get("until"), "until")
    if since is not None:
        selection["since"] = since
    if until is not None:
        if since is None:
            raise web.HTTPBadRequest(text="until needs since")
        selection["until"] = until
    if not selection:
        raise web.HTTPBadRequest(text="say what to replay: dead, call, job_ids or since")
    return selection


def add_sync_routes(app: web.Application, service: Any) -> None:
    def token() -> str | None:
        return secrets.get_secret(ADMIN_TOKEN_USER)

    async def dead(request: web.Request) -> web.Response:
        return web.json_response({"dead": await service.reader.run(sq.list_dead)})

    async def deliveries(request: web.Request) -> web.Response:
        source, call_id = request.match_info["source"], request.match_info["call_id"]
        job = await service.reader.run(sq.job_for_call, source, call_id)
        log = await service.reader.run(sq.delivery_log, source, call_id)
        return web.json_response({"job": job, "attempts": log})

    async def replay(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        count = await service.worker.replay(**replay_selection(body if isinstance(body, dict) else {}))
        return web.json_response({"requeued": count})

    async def discard(request: web.Request) -> web.Response:
        body = await request.json()
        count = await service.worker.discard([int(i) for i in body.get("job_ids", [])])
        return web.json_response({"discarded": count})

    app.router.add_get("/api/dead", dead)
    app.router.add_get("/api/calls/{source}/{call_id}/deliveries", deliveries)
    app.router.add_post("/api/replay", require_token(token, replay))
    app.router.add_post("/api/dead/discard", require_token(token, discard))
