"""Dialer.CX envelopes: ``{"event": ..., "timestamp": ..., "data": {call_id, agent, phone_number, ...}}``."""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import COMPLETED, INITIATED, CallEvent, PayloadError

EVENT_STATUS = {"call.started": INITIATED, "call.ended": COMPLETED}
CALL_TYPES = ("call.started", "call.ended", "recording.ready")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    kind = fields.event_type(item.get("event"))
    data = item.get("data")
    if not isinstance(data, dict):
        raise PayloadError("Dialer.CX payload without a data object")
    # phone_number is the lead's number: the callee unless the call is inbound.
    values = fields.call_values(data, default_direction=None if fields.is_non_call_type(kind) else "outbound")
    extra: dict[str, Any] = {}
    if kind == "recording.ready":  # its duration is the recording's length, not talk time
        values["recording_url"] = values["recording_url"] or fields.text(data.get("url"))
        recording_seconds = values.pop("talk_seconds")
        if recording_seconds is not None:
            extra["recording_seconds"] = recording_seconds
    values["status"] = fields.settle_status(EVENT_STATUS.get(kind), values)
    values["occurred_at"] = fields.to_iso(item.get("timestamp"))
    return fields.build_event("dialercx", kind, values, delivery, raw=data, call_types=CALL_TYPES, extra=extra)
