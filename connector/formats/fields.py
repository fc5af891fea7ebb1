"""Helpers shared by all payload normalizers: field aliases, coercion, event assembly."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping

from connector.calls import instant, outcome_for_disposition, seconds_between
from connector.model import (
    ANSWERED,
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    INITIATED,
    NO_ANSWER,
    OUTCOME_BUSY,
    OUTCOME_NO_ANSWER,
    OUTCOME_VOICEMAIL,
    QUEUED,
    RINGING,
    TERMINAL_STATUSES,
    VOICEMAIL,
    CALL_DETAIL_TYPES,
    CallEvent,
    PayloadError,
)

NON_CALL_PREFIXES = ("agent.", "lead.", "alert.")
CALL_PREFIXES = ("call.", "twilio.")

# Sender field names for each CallEvent field, first match wins (names are case-sensitive).
ALIASES: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "call_uuid", "CallSid", "callId", "call_sid", "callSid", "callUuid"),
    "from_number": ("from", "From", "from_number", "fromNumber", "caller", "caller_number"),
    "to_number": ("to", "To", "to_number", "toNumber", "callee", "callee_number"),
    "direction": ("direction", "Direction", "call_direction"),
    "sequence": ("sequence", "SequenceNumber", "sequence_number", "seq"),
    "initiated_at": ("initiated_at", "initiatedAt", "started_at", "startedAt", "start_time", "startTime"),
    "answered_at": ("answered_at", "answeredAt", "answer_time", "answerTime"),
    "ended_at": ("ended_at", "endedAt", "end_time", "endTime", "completed_at"),
    "talk_seconds": (
        "duration_seconds", "duration", "CallDuration", "talk_seconds", "talk_time", "billsec", "durationSeconds",
    ),
    "ring_seconds": ("ring_seconds", "ring_time", "ringSeconds"),
    "disposition": ("disposition", "outcome", "Disposition"),
    "hangup_cause": ("hangup_cause", "hangupCause", "HangupCause"),
    "sip_code": ("sip_response_code", "sip_code", "sip_status", "SipResponseCode", "sipCode"),
    "agent": ("agent", "seat_id", "agent_id", "agentId"),
    "did": ("did", "did_id", "didId"),
    "campaign": ("campaign", "campaign_name", "campaign_id", "campaignId"),
    "recording_url": ("recording_url", "recordingUrl", "RecordingUrl"),
    "answered_by": ("answered_by", "answeredBy", "AnsweredBy", "amd_result"),
    "transcript": ("transcript", "transcript_text", "transcriptText"),
    "transcript_url": ("transcript_url", "transcriptUrl"),
    "summary": ("summary", "call_summary", "callSummary"),
    "quality_score": ("quality_score", "qualityScore"),
    "cost": ("cost", "call_cost", "callCost"),
    "currency": ("currency", "cost_currency"),
}
PHONE_ALIASES = ("phone_number", "phoneNumber", "phone")
STATUS_ALIASES = ("status", "call_status", "callStatus", "CallStatus", "state")
TIME_FIELDS = ("initiated_at", "answered_at", "ended_at")

# Fields whose presence marks an event as being about a call.
CALL_EVIDENCE = ("status", *TIME_FIELDS, "talk_seconds", "ring_seconds", "hangup_cause", "sip_code", "answered_by")

STATUS_WORDS = {
    QUEUED: ("queued",),
    INITIATED: ("initiated", "started", "dialing", "created"),
    RINGING: ("ringing", "ring", "alerting"),
    ANSWERED: ("answered", "in-progress", "connected", "bridged"),
    COMPLETED: ("completed", "ended", "hangup", "finished"),
    BUSY: ("busy",),
    NO_ANSWER: ("no-answer", "noanswer", "unanswered"),
    FAILED: ("failed", "error"),
    CANCELED: ("canceled", "cancelled"),
    VOICEMAIL: ("voicemail", "voicemail-detected", "machine"),
}
_WORD_STATUS = {word: status for status, words in STATUS_WORDS.items() for word in words}

BUSY_SIP_CODES = frozenset({486, 600})
NO_ANSWER_SIP_CODES = frozenset({480, 408, 487})
BUSY_CAUSES = frozenset({"user_busy", "busy", "17"})
NO_ANSWER_CAUSES = frozenset({"no_answer", "no_user_response", "noanswer", "18", "19"})
FAILED_DISPOSITIONS = frozenset({"failed", "error"})
_OUTCOME_STATUS = {OUTCOME_NO_ANSWER: NO_ANSWER, OUTCOME_BUSY: BUSY, OUTCOME_VOICEMAIL: VOICEMAIL}


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the entry point knows about one item of a request body."""

    message_id: str | None  # the sender's event id (webhook-id header or a top-level id)
    digest: str  # "sha256:<hex of the raw body>", suffixed "#<index>" in a batch


# --- coercion -----------------------------------------------------------------


def text(value: Any) -> str | None:
    """A stripped string, or ``None`` for blanks and non-scalars."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    result = str(value).strip()
    return result or None


def to_int(value: Any) -> int | None:
    """An integer from 486, "486" or "486 Busy Here"; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    match = re.match(r"\s*(-?\d+)\b", value) if isinstance(value, str) else None
    try:
        return int(match.group(1)) if match else None
    except ValueError:  # more digits than int() converts: out of any range anyway
        return None


def to_seconds(value: Any) -> float | None:
    """Seconds from a number, a numeric string or "[hh:]mm:ss"; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value) if math.isfinite(value) and value >= 0 else None
        except OverflowError:  # an integer too large for a float
            return None
    raw = text(value)
    if raw is None:
        return None
    parts = raw.split(":")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return None
    if len(numbers) > 3 or any(n < 0 or not math.isfinite(n) for n in numbers):
        return None
    total = 0.0
    for number in numbers:
        total = total * 60 + number
    return total


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601, RFC 2822 or epoch seconds/milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value):
        value = float(value)
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    raw = text(value)
    if raw is None:
        return None
    moment = None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


_EPOCH_TEXT = re.compile(r"\s*\d+(\.\d+)?\s*")


def iso(moment: datetime) -> str:
    """``2026-06-04T09:14:22Z``; milliseconds are kept when not zero."""
    m = moment.astimezone(timezone.utc)
    if 1000 <= m.year <= 9999:  # what strftime gives, without its cost (it runs for every time field)
        base = f"{m.year}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    else:
        base = m.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{moment.microsecond // 1000:03d}Z" if moment.microsecond else f"{base}Z"


def to_iso(value: Any) -> str | None:
    moment = parse_time(value)
    return iso(moment) if moment else None


def to_float(value: Any) -> float | None:
    """A finite number from 4.5 or "4.50"; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value) if isinstance(value, (int, float)) else None
    except (ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


def currency(value: Any) -> str | None:
    word = text(value)
    return word.upper() if word else None


def is_url(value: Any) -> bool:
    word = text(value)
    return bool(word) and re.fullmatch(r"https?://\S+", word or "") is not None


def analysis_text(results: Mapping[str, Any], limit: int = 2000) -> str | None:
    """A sender's analysis results as one line, ``sentiment: Positive; successful: yes``
    (empty values left out; nested values as compact JSON)."""
    parts = []
    for name, value in results.items():
        if value is None or value == "" or value == {} or value == []:
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, (dict, list)):
            shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        else:
            shown = str(value).strip()
        parts.append(f"{name}: {shown}")
    line = "; ".join(parts)
    return (line[: limit - 1] + "…" if len(line) > limit else line) or None


def direction(value: Any) -> str | None:
    """"inbound"/"outbound" from inbound, incoming, outbound-api, outbound-dial, outgoing ..."""
    word = (text(value) or "").lower()
    if word.startswith(("inbound", "incoming")) or word == "in":
        return "inbound"
    if word.startswith(("outbound", "outgoing")) or word == "out":
        return "outbound"
    return None


def status_word(value: Any) -> str | None:
    """The lifecycle status a word such as "in-progress" or "no_answer" names, if any."""
    word = re.sub(r"[\s._]+", "-", (text(value) or "").lower())
    return _WORD_STATUS.get(word)


def pick(data: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    """The first value among ``names`` that is not ``None`` or blank."""
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return value
    return None


def event_type(value: Any, what: str = "event type") -> str:
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"missing {what}" if value in (None, "") else f"{what} must be a string")
    return value.strip()


def is_non_call_type(kind: str) -> bool:
    return kind.startswith(NON_CALL_PREFIXES)


# --- field mapping ------------------------------------------------------------

_COERCE: dict[str, Callable[[Any], Any]] = {
    "direction": direction,
    "sequence": to_int,
    "sip_code": to_int,
    "talk_seconds": to_seconds,
    "ring_seconds": to_seconds,
    "quality_score": to_float,
    "cost": to_float,
    "currency": currency,
    **{name: to_iso for name in TIME_FIELDS},
}


_ALIAS_OF = {alias: (name, rank) for name, names in ALIASES.items() for rank, alias in enumerate(names)}


def call_values(data: Mapping[str, Any], *, default_direction: str | None = None) -> dict[str, Any]:
    """CallEvent keyword values found in a flat sender object (aliases resolved, types coerced).

    A bare ``phone_number`` is the other party: ``to_number`` unless the call is inbound.
    Timestamps that cannot be parsed are kept verbatim in ``extra["unparsed"]``.
    """
    values: dict[str, Any] = dict.fromkeys(ALIASES)
    unparsed: dict[str, Any] = {}
    # One pass over the sender's keys (what pick() over every alias would find: the first alias in
    # ALIASES order that holds a value), then each value found coerced to its field's type.
    found: dict[str, tuple[int, Any]] = {}
    for key, raw in data.items():
        alias = _ALIAS_OF.get(key)
        if alias is not None and raw is not None and raw != "":
            name, rank = alias
            if name not in found or rank < found[name][0]:
                found[name] = (rank, raw)
    for name, (_, raw) in found.items():
        values[name] = _COERCE.get(name, text)(raw)
        if values[name] is None and name in TIME_FIELDS:
            unparsed[name] = raw
    values["direction"] = values["direction"] or default_direction
    if values["transcript"] and not values["transcript_url"] and is_url(values["transcript"]):
        values["transcript_url"], values["transcript"] = values["transcript"], None  # a link, not the text
    phone = text(pick(data, PHONE_ALIASES))
    slot = "from_number" if values["direction"] == "inbound" else "to_number"
    if phone and values[slot] is None:
        values[slot] = phone
    values["extra"] = {"unparsed": unparsed} if unparsed else {}
    return values


def data_status(data: Mapping[str, Any]) -> str | None:
    """The status named by a ``status``-like field of a sender object."""
    return status_word(pick(data, STATUS_ALIASES))


def status_from_disposition(label: str | None) -> str | None:
    """A specific terminal status implied by a disposition (no answer, busy, voicemail, failed)."""
    if not label:
        return None
    if label.strip().lower() in FAILED_DISPOSITIONS:
        return FAILED
    return _OUTCOME_STATUS.get(outcome_for_disposition(label))


def status_from_signal(sip_code: int | None, *causes: Any) -> str | None:
    """BUSY / NO_ANSWER implied by a SIP response code or a hangup cause (name or Q.850 code)."""
    words = {(text(cause) or "").lower() for cause in causes}
    if sip_code in BUSY_SIP_CODES or words & BUSY_CAUSES:
        return BUSY
    if sip_code in NO_ANSWER_SIP_CODES or words & NO_ANSWER_CAUSES:
        return NO_ANSWER
    return None


def settle_status(status: str | None, values: Mapping[str, Any], *causes: Any) -> str | None:
    """Refine a plain COMPLETED / FAILED with the SIP code, hangup cause and disposition.

    SIP code and hangup cause only count for calls that were never answered; a
    disposition refines COMPLETED only.
    """
    if status not in (COMPLETED, FAILED):
        return status
    answered = values.get("answered_at") is not None or bool(values.get("talk_seconds"))
    if not answered:
        by_signal = status_from_signal(values.get("sip_code"), values.get("hangup_cause"), *causes)
        if by_signal:
            return by_signal
    if status == COMPLETED:
        return status_from_disposition(values.get("disposition")) or COMPLETED
    return status


# --- event assembly -----------------------------------------------------------

_NATURAL_TIME = {INITIATED: "initiated_at", ANSWERED: "answered_at"}


def _settle_times(values: dict[str, Any]) -> None:
    """Fill occurred_at from the lifecycle time the status names, or that time from occurred_at."""
    status = values.get("status")
    natural = _NATURAL_TIME.get(status) or ("ended_at" if status in TERMINAL_STATUSES - {VOICEMAIL} else None)
    if values.get("occurred_at") is None:
        known = [values[name] for name in TIME_FIELDS if values.get(name)]
        values["occurred_at"] = values.get(natural) if natural else None
        if values["occurred_at"] is None and known:
            values["occurred_at"] = max(known, key=instant)
    elif natural and values.get(natural) is None:
        values[natural] = values["occurred_at"]
    if values.get("ring_seconds") is None and values.get("initiated_at"):
        if values.get("answered_at"):
            values["ring_seconds"] = seconds_between(values["initiated_at"], values["answered_at"])
        elif values.get("ended_at") and not values.get("talk_seconds"):
            values["ring_seconds"] = seconds_between(values["initiated_at"], values["ended_at"])


def build_event(
    fmt: str,
    kind: str,
    values: dict[str, Any],
    delivery: Delivery,
    *,
    raw: Mapping[str, Any],
    call_types: tuple[str, ...] = (),
    call_key: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> CallEvent:
    """Assemble a CallEvent: decide call / non-call, settle times, choose the dedupe key.

    Raises PayloadError for a call event without a call id.  An unknown type
    without a call id and without call fields becomes a non-call event.
    """
    values = dict(values)
    values["extra"] = {**values.get("extra", {}), **(extra or {})}
    call_id = values.get("call_id")
    if is_non_call_type(kind):
        is_call = False
    elif call_id:
        is_call = True
    elif (kind in call_types or kind in CALL_DETAIL_TYPES or kind.startswith(CALL_PREFIXES)
          or any(values.get(f) is not None for f in CALL_EVIDENCE)):
        raise PayloadError("call event without a call id")
    else:
        is_call = False
    if not is_call:
        values.update(call_id=None, status=None)
        values["extra"]["data"] = dict(raw)
    _settle_times(values)
    fallback = (call_key or f"{call_id}:{kind}") if is_call else delivery.digest
    return CallEvent(
        format=fmt,
        event_type=kind,
        dedupe_key=delivery.message_id or fallback,
        is_call_event=is_call,
        **values,
    )
