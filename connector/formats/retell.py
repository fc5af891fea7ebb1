"""Retell AI webhooks: ``{"event": "call_started" | "call_ended" | "call_analyzed" | ..., "call": {...}}``.

``call`` is Retell's call object: ids, numbers, direction, ``start_timestamp`` / ``end_timestamp``
(ms), ``disconnection_reason``, ``transcript``, ``recording_url``, ``call_analysis`` (summary,
sentiment, success, voicemail) and ``call_cost.combined_cost`` (US cents).  Dedupe on call id +
event: Retell sends each event once per call (and retries it unchanged).
"""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import ANSWERED, BUSY, COMPLETED, FAILED, NO_ANSWER, VOICEMAIL, CallEvent, PayloadError

EVENT_STATUS = {"call_started": ANSWERED, "call_ended": COMPLETED, "call_analyzed": COMPLETED}
DISCONNECTION_STATUS = {
    "dial_no_answer": NO_ANSWER,
    "dial_busy": BUSY,
    "dial_failed": FAILED,
    "voicemail_reached": VOICEMAIL,
    "error_no_audio_received": FAILED,
}
EXTRA_KEYS = ("agent_id", "call_type", "call_status", "disconnection_reason", "metadata")


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    kind = fields.event_type(item.get("event"))
    call = item.get("call")
    if not isinstance(call, dict):
        raise PayloadError("Retell payload without a call object")
    values = fields.call_values({k: v for k, v in call.items() if k not in ("transcript", "call_cost")})
    values["call_id"] = fields.text(call.get("call_id"))
    values["from_number"] = fields.text(call.get("from_number"))
    values["to_number"] = fields.text(call.get("to_number"))
    started, ended = fields.to_iso(call.get("start_timestamp")), fields.to_iso(call.get("end_timestamp"))
    values["answered_at"] = started  # Retell starts a call once it connected (no call_started on dial failures)
    values["ended_at"] = ended
    duration = call.get("duration_ms")
    seconds = fields.to_seconds(duration)
    values["talk_seconds"] = seconds / 1000 if seconds is not None else fields.seconds_between(started, ended)
    values["transcript"] = fields.text(call.get("transcript"))
    values["recording_url"] = fields.text(call.get("recording_url"))
    analysis = call.get("call_analysis") if isinstance(call.get("call_analysis"), dict) else {}
    values["summary"] = fields.text(analysis.get("call_summary"))
    values["analysis"] = fields.analysis_text({
        "sentiment": analysis.get("user_sentiment"), "successful": analysis.get("call_successful"),
        "in voicemail": analysis.get("in_voicemail"), **_flat(analysis.get("custom_analysis_data")),
    })
    cost = call.get("call_cost") if isinstance(call.get("call_cost"), dict) else {}
    cents = fields.to_float(cost.get("combined_cost"))
    if cents is not None:
        values["cost"], values["currency"] = round(cents / 100, 6), "USD"
    reason = (fields.text(call.get("disconnection_reason")) or "").lower()
    status = EVENT_STATUS.get(kind)
    if status == COMPLETED:
        status = DISCONNECTION_STATUS.get(reason) or (VOICEMAIL if analysis.get("in_voicemail") is True else status)
        if status != COMPLETED:
            values["answered_at"], values["talk_seconds"] = None, None
    values["status"] = status
    values["occurred_at"] = ended if status and status != ANSWERED else started
    extra = {key: call[key] for key in EXTRA_KEYS if call.get(key) not in (None, "", {}, [])}
    return fields.build_event("retell", kind, values, delivery, raw=call, call_types=tuple(EVENT_STATUS),
                              call_key=f"{values['call_id']}:{kind}", extra=extra)


def _flat(data: Any) -> dict[str, Any]:
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
