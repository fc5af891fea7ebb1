"""The event and call records every part of callsync shares.

A sender's payload is normalized (``connector.formats``) into one or more
:class:`CallEvent` objects; events of one call are folded (``connector.calls``)
into a :class:`CallRecord`.  Both are plain data: no I/O, no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# Lifecycle status of a call, in the order a call normally moves through them.
QUEUED = "queued"
INITIATED = "initiated"
RINGING = "ringing"
ANSWERED = "answered"  # connected / in progress
# Terminal statuses: once a call has one of these, a late non-terminal event never replaces it.
COMPLETED = "completed"
BUSY = "busy"
NO_ANSWER = "no-answer"
FAILED = "failed"
CANCELED = "canceled"
VOICEMAIL = "voicemail"

STATUS_RANK = {
    QUEUED: 0,
    INITIATED: 1,
    RINGING: 2,
    ANSWERED: 3,
}
TERMINAL_STATUSES = frozenset({COMPLETED, BUSY, NO_ANSWER, FAILED, CANCELED, VOICEMAIL})

# Outcomes: the business result of a finished call, what CRM rules key on.
OUTCOME_CONNECTED = "connected"
OUTCOME_SALE = "sale"
OUTCOME_NO_ANSWER = "no_answer"
OUTCOME_BUSY = "busy"
OUTCOME_VOICEMAIL = "voicemail"
OUTCOME_FAILED = "failed"
OUTCOME_ABANDONED = "abandoned"
OUTCOME_CANCELED = "canceled"
OUTCOMES = (
    OUTCOME_CONNECTED,
    OUTCOME_SALE,
    OUTCOME_NO_ANSWER,
    OUTCOME_BUSY,
    OUTCOME_VOICEMAIL,
    OUTCOME_FAILED,
    OUTCOME_ABANDONED,
    OUTCOME_CANCELED,
)


# Event types callsync knows beyond a call's status (AI voice-agent platforms send them; any
# format may use them).  Each is about a call: without a call id the payload is refused (400).
EVENT_CALL_QUEUED = "call.queued"
EVENT_TRANSCRIPT = "transcript.available"
EVENT_RECORDING = "recording.ready"
EVENT_QUALITY = "quality.score"
EVENT_COST = "cost.calculated"
CALL_DETAIL_TYPES = (EVENT_TRANSCRIPT, EVENT_RECORDING, EVENT_QUALITY, EVENT_COST)


class _Plain:
    """Fast, flat dict round-trips (``dataclasses.asdict`` deep-copies and is ~10x slower)."""

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        if not cls.__dict__.get("_names"):
            cls._names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        return cls._names

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self._field_names()}
        if isinstance(data.get("extra"), dict):
            data["extra"] = dict(data["extra"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = cls._field_names()
        return cls(**{k: v for k, v in data.items() if k in names})


class PayloadError(ValueError):
    """The payload is signed but cannot be understood (answered with 400 and this reason)."""


@dataclass(slots=True)
class CallEvent(_Plain):
    """One normalized event from a sender.

    ``dedupe_key`` is unique per source for the life of the store.  ``call_id``
    is ``None`` for events that are not about a call (agent login, lead update,
    alert).  Timestamps are ISO 8601 strings in UTC (``2026-06-04T09:14:22Z``)
    or ``None`` when the payload does not carry them.
    """

    format: str  # unlimcall | dialercx | twilio | standard
    event_type: str  # the sender's own type, e.g. "call.completed", "agent.login", "twilio.ringing"
    dedupe_key: str
    call_id: str | None = None
    is_call_event: bool = True
    status: str | None = None  # one of the lifecycle statuses above, when the event implies one
    occurred_at: str | None = None
    sequence: int | None = None  # sender's ordering hint (Twilio SequenceNumber)
    direction: str | None = None  # inbound | outbound
    from_number: str | None = None
    to_number: str | None = None
    initiated_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    talk_seconds: float | None = None
    ring_seconds: float | None = None
    disposition: str | None = None  # sender's disposition / hangup label, verbatim
    hangup_cause: str | None = None
    sip_code: int | None = None
    agent: str | None = None
    did: str | None = None
    campaign: str | None = None
    recording_url: str | None = None
    answered_by: str | None = None  # human | machine_* | fax | unknown (AMD)
    transcript: str | None = None  # the conversation as text
    transcript_url: str | None = None  # ... or where to read it
    summary: str | None = None
    quality_score: float | None = None  # the sender's own score (e.g. MOS, a 1-10 evaluation)
    cost: float | None = None
    currency: str | None = None  # ISO 4217, e.g. "USD"
    analysis: str | None = None  # the sender's analysis results, "name: value; ..." (sentiment, success ...)
    sender_outcome: str | None = None  # an outcome the sender declared (generic status_map), one of OUTCOMES
    extra: dict[str, Any] = field(default_factory=dict)
    test: bool = False  # sent as a test (request header X-Callsync-Test: 1): never synced to the CRM

    @property
    def phone(self) -> str | None:
        """The other party's number: the callee on outbound calls, the caller otherwise."""
        if self.direction == "outbound":
            return self.to_number or self.from_number
        return self.from_number or self.to_number


@dataclass(slots=True)
class CallRecord(_Plain):
    """Everything known about one call, assembled from its events in any order."""

    source: str
    call_id: str
    status: str | None = None
    outcome: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    initiated_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    disposition: str | None = None
    hangup_cause: str | None = None
    sip_code: int | None = None
    agent: str | None = None
    did: str | None = None
    campaign: str | None = None
    recording_url: str | None = None
    answered_by: str | None = None
    transcript: str | None = None
    transcript_url: str | None = None
    summary: str | None = None
    quality_score: float | None = None
    cost: float | None = None
    currency: str | None = None
    analysis: str | None = None
    sender_outcome: str | None = None
    last_sequence: int | None = None
    last_event_at: str | None = None
    event_count: int = 0
    test: bool = False  # one of its events was a test event: never synced to the CRM

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def phone(self) -> str | None:
        if self.direction == "outbound":
            return self.to_number or self.from_number
        return self.from_number or self.to_number
