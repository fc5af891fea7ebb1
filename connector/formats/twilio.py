"""Twilio Voice status callbacks (form fields, or the same keys in a JSON object)."""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import (
    ANSWERED,
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    INITIATED,
    NO_ANSWER,
    QUEUED,
    RINGING,
    CallEvent,
)

CALL_STATUS = {
    "queued": QUEUED,
    "initiated": INITIATED,
    "ringing": RINGING,
    "in-progress": ANSWERED,
    "answered": ANSWERED,
    "completed": COMPLETED,
    "busy": BUSY,
    "failed": FAILED,
    "no-answer": NO_ANSWER,
    "canceled": CANCELED,
}
EXTRA_KEYS = ("AccountSid", "ParentCallSid", "CallbackSource", "ApiVersion", "RecordingSid", "StirStatus")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    """event_type is "twilio.<CallStatus>"; callbacks without CallStatus are "twilio.amd",
    "twilio.recording.<RecordingStatus>" or "twilio.callback" and carry no status."""
    call_status = fields.text(item.get("CallStatus"))
    recording_status = fields.text(item.get("RecordingStatus"))
    if call_status:
        suffix = call_status
    elif recording_status:
        suffix = f"recording.{recording_status}"
    else:
        suffix = "amd" if fields.text(item.get("AnsweredBy")) else "callback"
    values = fields.call_values(item)
    values["status"] = CALL_STATUS.get(suffix.lower())
    values["occurred_at"] = fields.to_iso(item.get("Timestamp"))
    call_key = f"{values['call_id']}:{suffix}"
    if values["sequence"] is not None:
        call_key += f":{values['sequence']}"
    extra = {key: item[key] for key in EXTRA_KEYS if fields.text(item.get(key))}
    return fields.build_event(
        "twilio", f"twilio.{suffix}", values, delivery, raw=item, call_key=call_key, extra=extra
    )
