"""Pure planning: a finished call + settings -> the CRM writes it requires.

No I/O here; the worker executes a :class:`Plan` step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import phonenumbers

from connector.model import CallRecord
from connector.sync.settings import GhlSettings


class PlanError(ValueError):
    """The call cannot be synced at all (permanent: goes to the dead-letter queue)."""


@dataclass(slots=True)
class Plan:
    phone: str  # E.164
    marker: str  # put into notes/tasks so a retry can tell whether a write already happened
    note: str | None = None
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    callback: str = "none"  # increment | reset | none
    task: tuple[str, str, str] | None = None  # title, body, due (ISO 8601)
    fields: dict[str, str] = field(default_factory=dict)  # custom field key -> value


def to_e164(number: str | None, region: str) -> str:
    if not number:
        raise PlanError("the call has no phone number")
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        raise PlanError(f"cannot read phone number {number!r}: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise PlanError(f"{number!r} is not a possible phone number (region {region})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def marker_for(source: str, call_id: str) -> str:
    return f"[callsync {source}/{call_id}]"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def note_body(call: CallRecord, marker: str) -> str:
    outcome = (call.outcome or call.status or "unknown").replace("_", " ")
    lines = [
        f"Call {outcome} ({call.direction or 'direction unknown'})",
        f"From {call.from_number or '-'} to {call.to_number or '-'}",
        f"Ring {_seconds(call.ring_seconds)}, talk {_seconds(call.talk_seconds)}",
    ]
    details = [
        ("Disposition", call.disposition),
        ("Agent", call.agent),
        ("Campaign", call.campaign),
        ("Caller ID", call.did),
        ("SIP", str(call.sip_code) if call.sip_code else None),
        ("Ended", call.ended_at),
        ("Recording", call.recording_url),
        ("Transcript", call.transcript_url),
    ]
    lines += [f"{label}: {value}" for label, value in details if value]
    if call.summary:
        lines.append(f"Summary: {call.summary}")
    lines.append(marker)
    return "\n".join(lines)


def callback_effects(action: str, count_before: int, settings: GhlSettings) -> tuple[int, list[str], list[str]]:
    """New counter value and the tags it adds/removes (the 'callback exhausted' recipe)."""
    if action == "increment":
        count = count_before + 1
        if count >= settings.callback_threshold:
            return count, [settings.callback_exhausted_tag], [settings.active_dialing_tag]
        return count, [], []
    if action == "reset":
        removed = [settings.callback_exhausted_tag] if count_before >= settings.callback_threshold else []
        return 0, [], removed
    return count_before, [], []


def plan_for(call: CallRecord, settings: GhlSettings, now: datetime | None = None) -> Plan:
    now = now or datetime.now(timezone.utc)
    phone = to_e164(call.phone, settings.default_region)
    marker = marker_for(call.source, call.call_id)
    rule = settings.rule_for(call.outcome, call.disposition, call.campaign)
    plan = Plan(phone=phone, marker=marker)
    if rule is None:
        return plan
    plan.note = note_body(call, marker) if rule.note else None
    plan.add_tags = list(dict.fromkeys(rule.add_tags))
    plan.remove_tags = [t for t in dict.fromkeys(rule.remove_tags) if t not in plan.add_tags]
    plan.callback = rule.callback
    if rule.task:
        due = (now + timedelta(hours=rule.task_due_hours)).replace(microsecond=0)
        body = f"{note_body(call, marker)}"
        plan.task = (rule.task, body, due.isoformat().replace("+00:00", "Z"))
    if settings.outcome_field and call.outcome:
        plan.fields[settings.outcome_field] = call.outcome.replace("_", " ")
    if settings.call_date_field:
        plan.fields[settings.call_date_field] = (call.ended_at or now.isoformat())[:10]
    return plan
