"""Telnyx: Call Control v2 webhooks (``{"data": {"event_type", "id", "payload": {...}}}``) and
TeXML callbacks (form-encoded, Twilio-shaped).

The call id is ``call_leg_id`` (one per leg, like Twilio's ``CallSid``); TeXML's is ``CallSid``.
Dedupe on the webhook's ``data.id`` (with its event type).  Hangup causes and SIP codes refine how a call ended
when it was never answered; AMD results become ``answered_by``; the inbound MOS of a hangup is
the call's quality score.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from connector.formats import fields, twilio
from connector.model import (
    ANSWERED,
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    INITIATED,
    NO_ANSWER,
    CallEvent,
    PayloadError,
)

EVENT_STATUS = {
    "call.initiated": INITIATED,
    "call.answered": ANSWERED,
    "call.bridged": ANSWERED,
    "call.hangup": COMPLETED,
}
CALL_TYPES = (*EVENT_STATUS, "call.recording.saved", "call.machine.detection.ended",
              "call.machine.premium.detection.ended", "call.machine.greeting.ended")
# hangup_cause of a call that was never answered -> how it ended
HANGUP_STATUS = {
    "user_busy": BUSY,
    "call_rejected": BUSY,
    "no_answer": NO_ANSWER,
    "timeout": NO_ANSWER,
    "originator_cancel": CANCELED,
    "not_found": FAILED,
}
EXTRA_KEYS = ("call_control_id", "call_session_id", "connection_id", "hangup_source", "client_state", "state")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    data = item.get("data")
    if not isinstance(data, dict):
        if "CallSid" in item or "CallStatus" in item:
            return _texml(item, delivery)
        raise PayloadError("Telnyx payload without a data object (or TeXML CallSid)")
    kind = fields.event_type(data.get("event_type"), "data.event_type")
    event_id = fields.text(data.get("id"))
    if event_id:  # the webhook's own id, kept by retries (with its type: documented examples share ids)
        delivery = fields.Delivery(message_id=f"{event_id}:{kind}", digest=delivery.digest)
    payload = data.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    values = fields.call_values(payload)
    values["call_id"] = fields.text(payload.get("call_leg_id"))
    values["occurred_at"] = fields.to_iso(data.get("occurred_at")) or fields.to_iso(payload.get("occurred_at"))
    values["sip_code"] = fields.to_int(payload.get("sip_hangup_cause"))
    values["hangup_cause"] = fields.text(payload.get("hangup_cause"))
    status = EVENT_STATUS.get(kind)
    if kind == "call.hangup":
        values["initiated_at"] = fields.to_iso(payload.get("start_time"))
        values["quality_score"] = fields.to_float(_path(payload, "call_quality_stats", "inbound", "mos"))
        status = HANGUP_STATUS.get((values["hangup_cause"] or "").lower()) or fields.settle_status(status, values)
    elif kind == "call.recording.saved":
        values["recording_url"] = _recording_url(payload)
    elif kind in ("call.machine.detection.ended", "call.machine.premium.detection.ended"):
        values["answered_by"] = fields.text(payload.get("result"))
    values["status"] = status
    extra = {key: payload[key] for key in EXTRA_KEYS if fields.text(payload.get(key))}
    return fields.build_event("telnyx", kind, values, delivery, raw=payload, call_types=CALL_TYPES, extra=extra)


def _path(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _recording_url(payload: Mapping[str, Any]) -> str | None:
    for group in ("public_recording_urls", "recording_urls"):
        urls = payload.get(group)
        if isinstance(urls, dict):
            url = fields.text(urls.get("mp3")) or fields.text(urls.get("wav"))
            if url:
                return url
    return None


def _texml(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    """TeXML callbacks carry Twilio's field names; they are read the same way, as ``texml.<status>``."""
    event = twilio.parse(item, delivery)
    kind = "texml." + event.event_type.removeprefix("twilio.")
    return replace(event, format="telnyx", event_type=kind)
