"""UnlimCall-style flat JSON call events (``{"event": "call.completed", "call_uuid": ...}``)."""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import ANSWERED, COMPLETED, FAILED, INITIATED, VOICEMAIL, CallEvent

EVENT_STATUS = {
    "call.initiated": INITIATED,
    "call.answered": ANSWERED,
    "call.completed": COMPLETED,
    "call.failed": FAILED,
    "call.voicemail.detected": VOICEMAIL,
    "voicemail.detected": VOICEMAIL,
}
TIMESTAMP_KEYS = ("timestamp", "occurred_at", "event_time", "detected_at")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    kind = fields.event_type(item.get("event"))
    values = fields.call_values(item)
    cause_code = fields.text(item.get("hangup_cause_code"))
    values["status"] = fields.settle_status(EVENT_STATUS.get(kind), values, cause_code)
    values["occurred_at"] = fields.to_iso(fields.pick(item, TIMESTAMP_KEYS))
    extra = {"hangup_cause_code": fields.to_int(cause_code)} if cause_code else {}
    return fields.build_event(
        "unlimcall", kind, values, delivery, raw=item, call_types=tuple(EVENT_STATUS), extra=extra
    )
