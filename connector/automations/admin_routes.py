"""Admin API routes of the automations: ``GET /api/alerts`` (newest first, ``?since=`` ISO 8601),
``GET /api/alerts/<id>`` (with its deliveries), ``GET /api/automations`` (each recipe: enabled, live
figure, threshold, armed/tripped) and ``POST /api/alerts/ack`` (token required)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector import secrets
from connector.admin.api import require_token
from connector.automations.delivery import iso
from connector.store import alerts as store

ADMIN_TOKEN_USER = "admin:token"


def shown(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as the API shows it: times in ISO 8601 (UTC)."""
    row = dict(alert)
    row["created_at"] = iso(float(row["created_at"]))
    row["acknowledged_at"] = iso(float(row["acknowledged_at"])) if row.get("acknowledged_at") else None
    return row


def parse_since(value: str | None) -> float | None:
    from connector.sync.admin_routes import parse_time

    return parse_time(value, "since")


def _limit(value: str | None) -> int:
    try:
        limit = int(value) if value not in (None, "") else 100
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a whole number (1-1000)") from None
    if not 1 <= limit <= 1000:
        raise web.HTTPBadRequest(text="limit must be a whole number (1-1000)")
    return limit


async def automations_report(service: Any) -> dict[str, Any]:
    """What ``GET /api/automations`` and the window show: every recipe, callback exhaustion, counts."""
    rows = service.automations.status()
    threshold = int(service.ghl.callback_threshold)
    exhausted = await service.reader.run(store.callback_exhausted, threshold)
    rows.append({"name": "callback", "title": "Callback exhaustion", "enabled": bool(service.ghl.location_id),
                 "figure": {"contacts": exhausted["count"]}, "threshold": threshold, "unit": "calls",
                 "tripped": [], "state": "armed", "action": "", "subjects": exhausted["count"],
                 "recent": exhausted["recent"], "note": "kept by the CRM rules ([crm.ghl] callback_threshold)"})
    counts = await service.reader.run(store.delivery_counts)
    return {"automations": rows, "unacknowledged": await service.reader.run(store.unacknowledged),
            "deliveries": {"pending": counts.get("pending", 0) + counts.get("leased", 0), "dead": counts.get("dead", 0)},
            "evaluated_through": service.automations.evaluated_through, "error": service.automations.last_error}


def add_automation_routes(app: web.Application, service: Any) -> None:
    def token() -> str | None:
        return secrets.get_secret(ADMIN_TOKEN_USER)

    async def list_alerts(request: web.Request) -> web.Response:
        since = parse_since(request.query.get("since"))
        limit = _limit(request.query.get("limit"))
        rows = await service.reader.run(store.list_alerts, since, limit, request.query.get("recipe") or None)
        return web.json_response({"alerts": [shown(r) for r in rows]})

    async def one_alert(request: web.Request) -> web.Response:
        alert = await service.reader.run(store.get_alert, request.match_info["alert_id"])
        if alert is None:
            raise web.HTTPNotFound(text="no such alert")
        return web.json_response(shown(alert))

    async def automations(request: web.Request) -> web.Response:
        return web.json_response(await automations_report(service))

    async def acknowledge(request: web.Request) -> web.Response:
        from connector.sync.admin_routes import json_object

        body = await json_object(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise web.HTTPBadRequest(text="ids must be a list of alert ids")
        done = await service.writer.execute(lambda db: store.acknowledge(db, ids, service.clock()))
        return web.json_response({"acknowledged": done})

    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_get("/api/alerts/{alert_id}", one_alert)
    app.router.add_get("/api/automations", automations)
    app.router.add_post("/api/alerts/ack", require_token(token, acknowledge))
