"""Any JSON sender, mapped in config: dotted paths into the payload and a table of status values.

```toml
[sources.crm_dialer.fields]
call_id = "call.ref"          # dotted path; list items by index: "legs.0.id"
event = "evt.kind"
status = "call.result"
[sources.crm_dialer.status_map]
"no-answer" = "no_answer"     # sender value -> callsync outcome (or queued/initiated/ringing/answered)
```

Pure: :func:`compile_mapping` checks a mapping once (start-up), :func:`parse` applies it to one
payload object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
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
    OUTCOMES,
    QUEUED,
    RINGING,
    VOICEMAIL,
    CallEvent,
    PayloadError,
)

# The keys [sources.<name>.fields] may hold (anything else is a configuration error).
FIELD_KEYS = (
    "call_id", "event", "occurred_at", "from", "to", "direction", "status", "duration", "disposition", "agent",
    "campaign", "recording_url", "event_id", "transcript", "summary", "quality_score", "cost", "currency",
)
REQUIRED_FIELDS = ("call_id", "event")
# CallEvent field each mapped key fills, and how its value is read.
_TARGETS = {
    "from": "from_number", "to": "to_number", "duration": "talk_seconds", "agent": "agent", "campaign": "campaign",
    "disposition": "disposition", "recording_url": "recording_url", "direction": "direction",
    "transcript": "transcript", "summary": "summary", "quality_score": "quality_score", "cost": "cost",
    "currency": "currency",
}
_COERCE = {
    "duration": fields.to_seconds, "direction": fields.direction, "quality_score": fields.to_float,
    "cost": fields.to_float, "currency": fields.currency,
}
# What a status_map value stands for: (lifecycle status, declared outcome).
STATUS_TARGETS: dict[str, tuple[str, str | None]] = {
    "connected": (COMPLETED, "connected"),
    "sale": (COMPLETED, "sale"),
    "no_answer": (NO_ANSWER, "no_answer"),
    "busy": (BUSY, "busy"),
    "voicemail": (VOICEMAIL, "voicemail"),
    "failed": (FAILED, "failed"),
    "abandoned": (CANCELED, "abandoned"),
    "canceled": (CANCELED, "canceled"),
    "queued": (QUEUED, None),
    "initiated": (INITIATED, None),
    "ringing": (RINGING, None),
    "answered": (ANSWERED, None),
}
assert set(OUTCOMES) <= set(STATUS_TARGETS)
_SEGMENT = re.compile(r"[^.\s]+")


@dataclass(frozen=True, slots=True)
class GenericMapping:
    paths: tuple[tuple[str, tuple[str, ...]], ...]  # (field key, path segments)
    status_map: tuple[tuple[str, str], ...]  # (sender value, target), exact spelling

    def path(self, key: str) -> tuple[str, ...] | None:
        return next((p for k, p in self.paths if k == key), None)

    def status_target(self, value: str) -> str | None:
        exact = dict(self.status_map)
        if value in exact:
            return exact[value]
        folded = {k.strip().lower(): v for k, v in self.status_map}
        return folded.get(value.strip().lower())


def compile_mapping(field_paths: Mapping[str, Any], status_map: Mapping[str, Any]) -> GenericMapping:
    """A checked mapping; ValueError names the key at fault (unknown keys are checked by the caller)."""
    for key in REQUIRED_FIELDS:
        if key not in field_paths:
            raise ValueError(f"fields.{key} is required: the path of the sender's {key.replace('_', ' ')}")
    paths = []
    for key, path in field_paths.items():
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"fields.{key} must be a dotted path such as \"call.id\", got {path!r}")
        segments = tuple(path.strip().split("."))
        if not all(_SEGMENT.fullmatch(segment) for segment in segments):
            raise ValueError(f"fields.{key}: {path!r} is not a dotted path (no empty parts or spaces)")
        paths.append((str(key), segments))
    statuses = []
    for value, target in status_map.items():
        if not isinstance(target, str) or target not in STATUS_TARGETS:
            allowed = ", ".join(STATUS_TARGETS)
            raise ValueError(f"status_map.{value}: {target!r} is not one of {allowed}")
        statuses.append((str(value), target))
    return GenericMapping(tuple(paths), tuple(statuses))


def mapping_for(field_paths: Mapping[str, Any], status_map: Mapping[str, Any]) -> GenericMapping | None:
    """The compiled mapping of a source's tables (cached), or None when it maps nothing."""
    if not field_paths:
        return None
    return _compiled(tuple(field_paths.items()), tuple(status_map.items()))


@lru_cache(maxsize=64)
def _compiled(field_items: tuple[tuple[str, Any], ...], status_items: tuple[tuple[str, Any], ...]) -> GenericMapping:
    return compile_mapping(dict(field_items), dict(status_items))


def resolve(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` ("items.0.id": a key, then a list index), or None when absent."""
    for segment in path:
        if isinstance(data, Mapping):
            data = data.get(segment)
        elif isinstance(data, list) and segment.isdigit() and int(segment) < len(data):
            data = data[int(segment)]
        else:
            return None
    return data


def parse(item: Mapping[str, Any], delivery: fields.Delivery, mapping: GenericMapping) -> CallEvent:
    def get(key: str) -> Any:
        path = mapping.path(key)
        return resolve(item, path) if path else None

    raw_event = get("event")
    kind = fields.text(raw_event)
    if kind is None:
        where = ".".join(mapping.path("event") or ())
        raise PayloadError(f"no event type at {where!r} (the mapped fields.event path)")
    values: dict[str, Any] = {name: None for name in fields.ALIASES}
    values["call_id"] = fields.text(get("call_id"))
    values["occurred_at"] = fields.to_iso(get("occurred_at"))
    for key, target in _TARGETS.items():
        values[target] = _COERCE.get(key, fields.text)(get(key))
    raw_status = fields.text(get("status"))
    status = outcome = None
    if raw_status is not None:
        target = mapping.status_target(raw_status)
        status, outcome = STATUS_TARGETS[target] if target else (fields.status_word(raw_status), None)
    else:
        status = fields.status_word(kind.rsplit(".", 1)[-1])
    values["status"] = status if outcome else fields.settle_status(status, values)
    values["sender_outcome"] = outcome
    values["extra"] = {"status_value": raw_status} if raw_status is not None else {}
    if values["transcript"] and not values["transcript_url"] and fields.is_url(values["transcript"]):
        values["transcript_url"], values["transcript"] = values["transcript"], None
    event_id = fields.text(get("event_id"))
    if event_id is not None:
        delivery = fields.Delivery(message_id=event_id, digest=delivery.digest)
    call_key = f"{values['call_id']}:{kind}:{raw_status or ''}"
    return fields.build_event("generic", kind, values, delivery, raw=item, call_key=call_key)
