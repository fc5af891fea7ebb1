"""Vapi server messages: ``{"message": {"type": ..., "call": {...}, ...}}``.

``status-update`` carries the call's status (queued, ringing, in-progress, forwarding, ended);
``end-of-call-report`` the end reason, times, cost (USD), the artifact (transcript, recording)
and the analysis (summary, success evaluation, structured data).  Other message types
(transcript, conversation-update, tool-calls, hang, ...) join their call without changing it.

Vapi messages carry no event id: a report and each status of a call are deduped on the call id;
other messages on a hash of the body.
"""

from __future__ import annotations

from typing import Any, Mapping

from connector.formats import fields
from connector.model import (
    ANSWERED,
    BUSY,
    COMPLETED,
    FAILED,
    NO_ANSWER,
    QUEUED,
    RINGING,
    VOICEMAIL,
    CallEvent,
    PayloadError,
)

STATUS = {"scheduled": QUEUED, "queued": QUEUED, "ringing": RINGING, "in-progress": ANSWERED,
          "forwarding": ANSWERED, "ended": COMPLETED}
CALL_TYPES = ("status-update", "end-of-call-report")
DIRECTIONS = {"inboundPhoneCall": "inbound", "outboundPhoneCall": "outbound"}


def ended_status(reason: str) -> str:
    """The lifecycle status an ``endedReason`` stands for."""
    word = reason.lower()
    if "did-not-answer" in word or "no-answer" in word:
        return NO_ANSWER
    if "busy" in word:
        return BUSY
    if "voicemail" in word:
        return VOICEMAIL
    if "error" in word or "failed" in word or "fault" in word:
        return FAILED
    return COMPLETED


def parse(item: Mapping[str, Any], delivery: fields.Delivery) -> CallEvent:
    message = item.get("message")
    if not isinstance(message, dict):
        raise PayloadError("Vapi payload without a message object")
    kind = fields.event_type(message.get("type"), "message.type")
    call = message.get("call") if isinstance(message.get("call"), dict) else {}
    values = fields.call_values({})
    values["call_id"] = fields.text(call.get("id"))
    direction = DIRECTIONS.get(fields.text(call.get("type")) or "")
    customer = _number(call.get("customer")) or _number(message.get("customer"))
    ours = _number(call.get("phoneNumber")) or _number(message.get("phoneNumber"))
    values["direction"] = direction
    values["from_number"], values["to_number"] = (ours, customer) if direction == "outbound" else (customer, ours)
    reason = fields.text(message.get("endedReason")) or fields.text(call.get("endedReason"))
    status = None
    if kind == "status-update":
        raw = (fields.text(message.get("status")) or "").lower()
        status = STATUS.get(raw)
        if status == COMPLETED and reason:
            status = ended_status(reason)
        kind_key = f"status-update:{raw}"
    elif kind == "end-of-call-report":
        status = ended_status(reason or "")
        _report(message, call, values)
        kind_key = kind
    else:
        kind_key = None
    if status in (NO_ANSWER, BUSY, FAILED):
        values["answered_at"] = values["talk_seconds"] = None
    values["status"] = status
    values["disposition"] = None
    values["hangup_cause"] = reason
    values["occurred_at"] = fields.to_iso(message.get("timestamp")) or values["ended_at"]
    call_key = f"{values['call_id']}:{kind_key}" if kind_key else delivery.digest
    extra = {"ended_reason": reason} if reason else {}
    return fields.build_event("vapi", kind, values, delivery, raw=message, call_types=CALL_TYPES,
                              call_key=call_key, extra=extra)


def _report(message: Mapping[str, Any], call: Mapping[str, Any], values: dict[str, Any]) -> None:
    artifact = message.get("artifact") if isinstance(message.get("artifact"), dict) else {}
    analysis = message.get("analysis") if isinstance(message.get("analysis"), dict) else {}
    started = fields.to_iso(message.get("startedAt")) or fields.to_iso(call.get("startedAt"))
    ended = fields.to_iso(message.get("endedAt")) or fields.to_iso(call.get("endedAt"))
    values["answered_at"], values["ended_at"] = started, ended
    values["talk_seconds"] = fields.to_seconds(message.get("durationSeconds")) or fields.seconds_between(started, ended)
    values["transcript"] = fields.text(artifact.get("transcript")) or fields.text(message.get("transcript"))
    values["recording_url"] = _recording(artifact) or fields.text(message.get("recordingUrl"))
    values["summary"] = fields.text(analysis.get("summary")) or fields.text(message.get("summary"))
    evaluation = analysis.get("successEvaluation")
    values["quality_score"] = fields.to_float(evaluation)
    values["analysis"] = fields.analysis_text({"success evaluation": evaluation,
                                               "structured data": analysis.get("structuredData")})
    values["cost"] = fields.to_float(message.get("cost")) or fields.to_float(call.get("cost"))
    values["currency"] = "USD" if values["cost"] is not None else None


def _recording(artifact: Mapping[str, Any]) -> str | None:
    recording = artifact.get("recording") if isinstance(artifact.get("recording"), dict) else {}
    mono = recording.get("mono") if isinstance(recording.get("mono"), dict) else {}
    return (fields.text(artifact.get("recordingUrl")) or fields.text(mono.get("combinedUrl"))
            or fields.text(recording.get("stereoUrl")) or fields.text(artifact.get("stereoRecordingUrl")))


def _number(party: Any) -> str | None:
    return fields.text(party.get("number")) if isinstance(party, dict) else None
