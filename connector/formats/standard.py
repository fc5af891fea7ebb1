"""Standard Webhooks JSON: ``{"type": "call.completed", "timestamp": ISO, "data": {...}}``.

``data`` may use any sender's field names.  For ``call.*`` types the type names
the status (``call.no_answer`` -> no-answer); a plain completed/ended type is
refined by ``data.status``, the SIP code, hangup cause and disposition.  When no
call-id field is present, ``data.id`` of a ``call.*`` event is the call id.
"""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import COMPLETED, TERMINAL_STATUSES, CallEvent, PayloadError


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    kind = fields.event_type(item.get("type"), "type")
    data = item.get("data")
    if not isinstance(data, dict):
        raise PayloadError("Standard Webhooks payload without a data object")
    values = fields.call_values(data)
    status = None
    if kind.startswith("call."):
        values["call_id"] = values["call_id"] or fields.text(data.get("id"))
        status = fields.status_word(kind[len("call."):])
        named = fields.data_status(data)
        if status == COMPLETED and named in TERMINAL_STATUSES:
            status = named
    values["status"] = fields.settle_status(status, values)
    values["occurred_at"] = fields.to_iso(item.get("timestamp")) or fields.to_iso(data.get("timestamp"))
    return fields.build_event("standard", kind, values, delivery, raw=data)
