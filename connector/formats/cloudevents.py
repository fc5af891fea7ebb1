"""CloudEvents 1.0 over HTTP: structured (``application/cloudevents+json``), batch
(``application/cloudevents-batch+json``) and binary (``ce-*`` headers, the body is ``data``).

The mode comes from the media type, as the HTTP binding says: ``application/cloudevents`` is
structured, ``application/cloudevents-batch`` a batch, anything else binary.  Dedupe on
``source`` + ``id`` (the spec: events with both equal are duplicates).  The call id is
``subject`` when set, else ``data.call_id`` or ``data.call.id``; the other call fields come
from ``data`` (or ``data.call``) under any sender's field names.  A type ending in a status
word (``com.example.call.completed``) or a ``data.status`` sets the call's status.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from connector.formats import fields
from connector.model import COMPLETED, TERMINAL_STATUSES, CallEvent, PayloadError

REQUIRED = ("id", "source", "specversion", "type")
STRUCTURED = "application/cloudevents"
BATCH = "application/cloudevents-batch"


def events_of(body: bytes, content_type: str, headers: Mapping[str, str], parsed: Any) -> list[dict[str, Any]]:
    """The request's events as structured-mode objects (``parsed``: the JSON body, or None
    when it is not JSON)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media.startswith(BATCH):
        if not isinstance(parsed, list):
            raise PayloadError("a CloudEvents batch must be a JSON array of events")
        return [_event(item, f"batch item {n}") for n, item in enumerate(parsed)]
    if media.startswith(STRUCTURED):
        if isinstance(parsed, list):
            raise PayloadError("structured CloudEvents mode carries one event, not an array")
        return [_event(parsed, "event")]
    event: dict[str, Any] = {}
    for key, value in headers.items():
        name = str(key).lower()
        if name.startswith("ce-") and len(name) > 3:
            event[name[3:]] = value
    if not event:
        raise PayloadError("not a CloudEvent: no ce-* headers and not application/cloudevents+json")
    event["datacontenttype"] = content_type
    event["data"] = parsed if parsed is not None else body.decode("utf-8", "replace")
    return [_event(event, "event")]


def _event(item: Any, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise PayloadError(f"CloudEvents {what} is not an object")
    missing = [key for key in REQUIRED if not fields.text(item.get(key))]
    if missing:
        raise PayloadError(f"CloudEvents {what} lacks required attribute(s): {', '.join(missing)}")
    if str(item.get("specversion")).strip() != "1.0":
        raise PayloadError(f"CloudEvents specversion {item.get('specversion')!r} is not 1.0")
    return item


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    """One event (structured-mode object) -> CallEvent."""
    event = _event(item, "event")
    kind = str(event["type"]).strip()
    data = event.get("data")
    if isinstance(data, str) and data.lstrip()[:1] == "{":
        try:
            data = json.loads(data)
        except ValueError:
            pass
    data = data if isinstance(data, dict) else {}
    call = data.get("call") if isinstance(data.get("call"), dict) else {}
    values = fields.call_values({**call, **{k: v for k, v in data.items() if k != "call"}})
    values["call_id"] = fields.text(event.get("subject")) or fields.text(data.get("call_id")) or fields.text(call.get("id"))
    status = fields.status_word(kind.rsplit(".", 1)[-1])
    named = fields.data_status(data) or fields.data_status(call)
    if status is None or (status == COMPLETED and named in TERMINAL_STATUSES):
        status = named or status
    values["status"] = fields.settle_status(status, values)
    values["occurred_at"] = fields.to_iso(event.get("time"))
    key = json.dumps([str(event["source"]).strip(), str(event["id"]).strip()], ensure_ascii=False)
    delivery = fields.Delivery(message_id=key, digest=delivery.digest)
    extra = {"ce_source": event["source"], "ce_id": event["id"]}
    return fields.build_event("cloudevents", kind, values, delivery, raw=data, extra=extra)
