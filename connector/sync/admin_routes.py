"""Admin API routes of the sync worker: dead letters, delivery log, replay (token required)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from connector import secrets
from connector.admin.api import require_token
from connector.store import jobs

ADMIN_TOKEN_USER = "admin:token"
INT64_MAX = 2**63 - 1


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, else 400 with the reason (never a 500)."""
    try:
        body = await request.json()
    except ValueError:  # not JSON, not UTF-8, or empty
        raise web.HTTPBadRequest(text="body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object, not " + type(body).__name__)
    return body


def job_ids(value: Any) -> list[int]:
    """``job_ids`` of a request body: a list of positive integers (digit strings accepted), else 400."""
    ids: list[int] = []
    for item in value if isinstance(value, list) else [None]:
        if isinstance(item, str) and item.strip().isdecimal():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= INT64_MAX:
            raise web.HTTPBadRequest(text="job_ids must be a list of job ids (positive integers)")
        ids.append(item)
    return ids


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
    """The JSON body of POST /api/replay -> keyword arguments of ``store.jobs.replay``."""
    selection: dict[str, Any] = {}
    if body.get("dead"):
        selection["dead"] = True
    if body.get("call"):
        source, _, call_id = str(body["call"]).partition("/")
        if not source or not call_id:
            raise web.HTTPBadRequest(text="call must be SOURCE/CALL_ID")
        selection |= {"source": source, "call_id": call_id}
    if body.get("job_ids"):
        selection["job_ids"] = job_ids(body["job_ids"])
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
        return web.json_response({"dead": await service.reader.run(jobs.list_dead)})

    async def deliveries(request: web.Request) -> web.Response:
        source, call_id = request.match_info["source"], request.match_info["call_id"]
        job = await service.reader.run(jobs.job_for_call, source, call_id)
        log = await service.reader.run(jobs.delivery_log, source, call_id)
        return web.json_response({"job": job, "attempts": log})

    async def bounded(work: Any) -> Any:
        """Storage that does not answer is a 503 within the ack timeout, not a request left hanging."""
        timeout = service.config.server.ack_timeout_seconds
        try:
            return await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            raise web.HTTPServiceUnavailable(text=f"the store did not answer within {timeout:g} s; retry",
                                             headers={"Retry-After": "5"}) from None

    async def replay(request: web.Request) -> web.Response:
        selection = replay_selection(await json_object(request))
        return web.json_response({"requeued": await bounded(service.worker.replay(**selection))})

    async def discard(request: web.Request) -> web.Response:
        ids = job_ids((await json_object(request)).get("job_ids", []))
        return web.json_response({"discarded": await bounded(service.worker.discard(ids))})

    app.router.add_get("/api/dead", dead)
    app.router.add_get("/api/calls/{source}/{call_id}/deliveries", deliveries)
    app.router.add_post("/api/replay", require_token(token, replay))
    app.router.add_post("/api/dead/discard", require_token(token, discard))
