"""What an alert job sends: an action's HTTP request, an Apprise notification, a signed webhook.

Requests are built from the stored alert and the configuration *at send time* (secrets are never
stored with a job).  Every request carries the alert's id (``Idempotency-Key`` and
``X-Callsync-Alert-Id`` headers, ``webhook-id`` for the signed webhook, ``alert_id`` in Apprise's
JSON payloads), so a sink that is down and retried never gets one alert under two ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from connector.automations.settings import TITLES, ActionSettings, AutomationSettings
from connector.automations.templates import render, render_header, render_json, render_url

ALERT_HEADER = "X-Callsync-Alert-Id"
MASK = "***"


class Undeliverable(Exception):
    """The job can never succeed as configured (action removed, no secret): a dead letter with this reason."""


@dataclass(slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    shown_url: str = ""  # for the delivery log: the URL without secrets


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def template_fields(alert: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    """What ``{field}`` may name: the alert's own fields, its id, recipe, level, subject, message, time."""
    fields = dict(alert.get("fields") or {})
    fields.update(id=alert["id"], recipe=alert["recipe"], level=alert["level"], subject=alert["subject"],
                  message=alert["message"], created_at=iso(float(alert["created_at"])))
    if secret is not None:
        fields["secret"] = secret
    return fields


def url_key(url: str) -> str:
    """Names an Apprise URL in a job without storing the URL (it may hold a token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def action_request(action: ActionSettings, alert: dict[str, Any], secret: str | None) -> Request:
    if action.uses_secret and not secret:
        from connector.secrets import env_name

        raise Undeliverable(f"the action {action.name} needs a secret: `callsync secret set {action.secret_user}` "
                            f"or {env_name(action.secret_user)}")
    fields = template_fields(alert, secret)
    shown = template_fields(alert, MASK if action.uses_secret else None)
    headers = {name: render_header(value, fields) for name, value in action.headers.items()}
    body: bytes | None = None
    if action.json is not None:
        body = json.dumps(render_json(action.json, fields), default=str).encode()
        headers.setdefault("Content-Type", "application/json")
    elif action.body:
        body = render(action.body, fields).encode()
    headers.setdefault("Idempotency-Key", alert["id"])
    headers[ALERT_HEADER] = alert["id"]
    return Request(action.method, render_url(action.url, fields), headers, body, render_url(action.url, shown))


def webhook_payload(alert: dict[str, Any]) -> bytes:
    """The signed webhook's body: the same bytes on every retry."""
    data = {k: alert[k] for k in ("id", "recipe", "level", "subject", "message", "fields", "evidence", "event_id")}
    data["created_at"] = iso(float(alert["created_at"]))
    return json.dumps({"type": f"alert.{alert['recipe']}", "timestamp": data["created_at"], "data": data},
                      sort_keys=True, default=str).encode()


def webhook_request(url: str, alert: dict[str, Any], secret: str | None, now: float) -> Request:
    if not secret:
        raise Undeliverable("the alerts webhook needs a signing secret: `callsync secret set alerts:webhook` "
                            "or CALLSYNC_ALERTS_WEBHOOK (a whsec_... Standard Webhooks secret)")
    from standardwebhooks.webhooks import Webhook

    body = webhook_payload(alert)
    when = datetime.fromtimestamp(now, timezone.utc)
    try:
        signature = Webhook(secret).sign(alert["id"], when, body.decode())
    except Exception as exc:  # noqa: BLE001 - a secret that is not base64
        raise Undeliverable(f"the alerts webhook secret cannot sign: {exc}") from None
    headers = {"Content-Type": "application/json", "webhook-id": alert["id"],
               "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature, ALERT_HEADER: alert["id"]}
    return Request("POST", url, headers, body, url)


# -- Apprise --------------------------------------------------------------------------------


class _ThreadLog(logging.Handler):
    """Apprise's log lines of the calling thread (its plugins say why a notification failed)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and record.levelno >= logging.INFO:
            self.lines.append(record.getMessage())


def notify_url(settings: AutomationSettings, key: str) -> str:
    for url in settings.alerts.notify:
        if url_key(url) == key:
            return url
    raise Undeliverable("this [alerts] notify URL is no longer configured")


def apprise_send(url: str, alert: dict[str, Any], timeout: float) -> tuple[bool, str, str]:
    """Blocking (run it in a thread): ``(sent, the URL with secrets masked, why it failed)``."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise Undeliverable("Apprise cannot use this notify URL")
    shown = plugin.url(privacy=True)
    if isinstance(getattr(plugin, "headers", None), dict):
        plugin.headers[ALERT_HEADER] = alert["id"]
    if isinstance(getattr(plugin, "payload_extras", None), dict) and type(plugin).__name__ == "NotifyJSON":
        plugin.payload_extras["alert_id"] = alert["id"]
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(plugin, name):
            setattr(plugin, name, timeout)
    title = f"callsync · {TITLES.get(alert['recipe'], alert['recipe'])}"
    body = f"{alert['message']}\n({alert['id']})"
    handler = _ThreadLog()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        sent = bool(plugin.send(body=body, title=title, notify_type=apprise.NotifyType.WARNING))
    finally:
        logger.removeHandler(handler)
    return sent, shown, "; ".join(handler.lines[-3:])
