"""Turn a sender's webhook body into normalized :class:`CallEvent` objects (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl

from connector.formats import cloudevents, dialercx, generic, ghl, retell, standard, telnyx, twilio, unlimcall, vapi
from connector.formats.fields import Delivery, text
from connector.formats.generic import GenericMapping
from connector.formats.storable import storable
from connector.model import CallEvent, PayloadError

__all__ = ["FORMATS", "detect_format", "normalize", "parse_body"]

PARSERS: dict[str, Callable[[Mapping[str, Any], Delivery], CallEvent]] = {
    "unlimcall": unlimcall.parse,
    "dialercx": dialercx.parse,
    "twilio": twilio.parse,
    "standard": standard.parse,
    "cloudevents": cloudevents.parse,
    "telnyx": telnyx.parse,
    "retell": retell.parse,
    "vapi": vapi.parse,
    "ghl": ghl.parse,
}
FORMATS = (*PARSERS, "generic")
FORM_TYPE = "application/x-www-form-urlencoded"
MESSAGE_ID_HEADERS = ("webhook-id", "svix-id")
BODY_ID_KEYS = ("id", "event_id")


def normalize(
    body: bytes, content_type: str, headers: Mapping[str, str], *, format_hint: str = "auto",
    mapping: GenericMapping | None = None,
) -> list[CallEvent]:
    """Parse one request body into events (one per object; a JSON array is a batch).

    ``mapping`` is the field mapping of a ``generic`` source.  Raises PayloadError with a
    readable reason when the body cannot be understood or an event's call id or dedupe key
    cannot be stored exactly (:mod:`connector.formats.storable`).
    """
    if format_hint != "auto" and format_hint not in FORMATS:
        raise ValueError(f"unknown format {format_hint!r}; expected auto or one of {', '.join(FORMATS)}")
    if format_hint == "generic" and mapping is None:
        raise ValueError("a generic source needs its field mapping")
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if format_hint == "cloudevents":
        return _cloudevents(body, content_type, lowered, digest)
    is_form, parsed = parse_body(body, content_type)
    batch = isinstance(parsed, list)
    header_id = next((text(lowered.get(name)) for name in MESSAGE_ID_HEADERS if text(lowered.get(name))), None)
    events = []
    for index, item in enumerate(parsed if batch else [parsed]):
        fmt = format_hint if format_hint != "auto" else detect_format(item, lowered, is_form=is_form)
        delivery = _delivery(item, header_id, digest, index if batch else None)
        if fmt == "generic":  # its event id is the mapped path only, never a guessed "id" key
            delivery = _delivery({}, header_id, digest, index if batch else None)
            events.append(storable(generic.parse(item, delivery, mapping)))  # type: ignore[arg-type]
        else:
            events.append(storable(PARSERS[fmt](item, delivery)))
    return events


def _cloudevents(body: bytes, content_type: str, headers: Mapping[str, str], digest: str) -> list[CallEvent]:
    """Structured, batch or binary CloudEvents (the mode from the media type)."""
    if not body or not body.strip():
        raise PayloadError("empty body")
    media = (content_type or "").split(";")[0].strip().lower()
    parsed: Any = None
    if media in ("application/json", "text/json") or media.endswith("+json") or body.lstrip()[:1] in (b"{", b"["):
        parsed = _parse_json(body)
    items = cloudevents.events_of(body, content_type, headers, parsed)
    batch = len(items) > 1 or media.startswith(cloudevents.BATCH)
    return [storable(cloudevents.parse(item, Delivery(None, f"{digest}#{n}" if batch else digest)))
            for n, item in enumerate(items)]


def detect_format(item: Mapping[str, Any], headers: Mapping[str, str], *, is_form: bool = False) -> str:
    """Which sender format one parsed object is in; PayloadError when none fits."""
    has_header_id = any(text(value) for key, value in headers.items() if key.lower() in MESSAGE_ID_HEADERS)
    has_type_and_data = "type" in item and "data" in item
    if is_form or "CallSid" in item:
        return "twilio"
    if "specversion" in item and "type" in item and "source" in item:
        return "cloudevents"
    message, data = item.get("message"), item.get("data")
    if isinstance(message, dict) and "type" in message:
        return "vapi"
    if isinstance(data, dict) and "event_type" in data and "payload" in data:
        return "telnyx"
    if "event" in item and isinstance(item.get("call"), dict):
        return "retell"
    if has_type_and_data and has_header_id:
        return "standard"
    if "event" in item:
        return "dialercx" if isinstance(item.get("data"), dict) else "unlimcall"
    if has_type_and_data:
        return "standard"
    keys = ", ".join(sorted(map(str, item))[:12]) or "none"
    raise PayloadError(f"unrecognised payload: no known sender format has these top-level keys ({keys})")


def parse_body(body: bytes, content_type: str) -> tuple[bool, dict[str, Any] | list[dict[str, Any]]]:
    """``(is_form, object or list of objects)`` from a JSON or form-encoded body."""
    if not body or not body.strip():
        raise PayloadError("empty body")
    media = (content_type or "").split(";")[0].strip().lower()
    if media == FORM_TYPE:
        return True, _parse_form(body)
    if media in ("application/json", "text/json") or media.endswith("+json"):
        return False, _parse_json(body)
    if media in ("", "text/plain", "application/octet-stream"):
        looks_like_json = body.lstrip()[:1] in (b"{", b"[")
        return (False, _parse_json(body)) if looks_like_json else (True, _parse_form(body))
    raise PayloadError(f"unsupported content type {media!r}; expected JSON or form-encoded data")


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        decoded = body.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise PayloadError(f"form body is not valid UTF-8 (byte {exc.start})") from None
    pairs = parse_qsl(decoded, keep_blank_values=True)
    if not pairs:
        raise PayloadError("form body has no fields")
    return dict(pairs)  # a repeated field keeps its last value


def _parse_json(body: bytes) -> dict[str, Any] | list[dict[str, Any]]:
    try:
        parsed = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise PayloadError(f"JSON body is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise PayloadError(f"invalid JSON: {exc}") from None
    if isinstance(parsed, dict):
        return parsed
    if isinstance(parsed, list):
        if not parsed:
            raise PayloadError("empty JSON array: no events")
        for position, item in enumerate(parsed):
            if not isinstance(item, dict):
                raise PayloadError(f"JSON array item {position} is {_kind(item)}, expected an object")
        return parsed
    raise PayloadError(f"JSON body is {_kind(parsed)}, expected an object or an array of objects")


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _delivery(item: Mapping[str, Any], header_id: str | None, digest: str, index: int | None) -> Delivery:
    """Dedupe inputs: header id, else the item's own id; batch items get "#<index>" suffixes."""
    item_id = next((text(item.get(key)) for key in BODY_ID_KEYS if text(item.get(key))), None)
    if index is None:
        return Delivery(message_id=header_id or item_id, digest=digest)
    batch_header_id = f"{header_id}#{index}" if header_id else None
    return Delivery(message_id=item_id or batch_header_id, digest=f"{digest}#{index}")
