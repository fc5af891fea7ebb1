"""GoHighLevel's own webhooks: ``{"type": "InboundMessage" | "OutboundMessage" | "ContactCreate" | ..., ...}``.

Messages with ``messageType: "CALL"`` are calls (the message id is the call id; ``callStatus``
or ``status``: completed, voicemail, no-answer, busy, ...; ``callDuration`` in seconds; the
recording in ``attachments``).  Every other type is stored as an event not about a call.
GoHighLevel's payloads name the contact (``contactId``), not its phone number.  Dedupe on
``webhookId`` when the payload has one, else the message id, type and status.
"""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import COMPLETED, CallEvent, PayloadError

CALL_MESSAGE_TYPES = ("CALL", "TYPE_CALL")
EXTRA_KEYS = ("contactId", "locationId", "conversationId", "messageType", "webhookId", "userId")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    kind = fields.event_type(item.get("type"), "type")
    webhook_id = fields.text(item.get("webhookId"))
    if webhook_id:
        delivery = fields.Delivery(message_id=webhook_id, digest=delivery.digest)
    extra = {key: item[key] for key in EXTRA_KEYS if fields.text(item.get(key))}
    if (fields.text(item.get("messageType")) or "").upper() not in CALL_MESSAGE_TYPES:
        values = {**fields.call_values({}), "status": None, "occurred_at": _when(item)}
        return fields.build_event("ghl", kind, values, delivery, raw=item, extra=extra)
    call_id = fields.text(item.get("messageId"))
    if not call_id:
        raise PayloadError("GoHighLevel call message without a messageId")
    values = fields.call_values({})
    values["call_id"] = call_id
    values["direction"] = fields.direction(item.get("direction"))
    values["talk_seconds"] = fields.to_seconds(item.get("callDuration"))
    values["agent"] = fields.text(item.get("userId"))
    values["recording_url"] = next((a for a in _attachments(item) if fields.is_url(a)), None)
    raw_status = fields.text(item.get("callStatus")) or fields.text(item.get("status"))
    status = fields.status_word(raw_status) if raw_status else None
    values["status"] = fields.settle_status(status, values) if status == COMPLETED else status
    values["occurred_at"] = _when(item)
    call_key = f"{call_id}:{kind}:{raw_status or ''}"
    return fields.build_event("ghl", kind, values, delivery, raw=item, call_key=call_key, extra=extra)


def _when(item: Mapping[str, Any]) -> str | None:
    return fields.to_iso(item.get("timestamp")) or fields.to_iso(item.get("dateAdded"))


def _attachments(item: Mapping[str, Any]) -> list[str]:
    found = item.get("attachments")
    return [str(a) for a in found if isinstance(a, str)] if isinstance(found, list) else []
