"""Make a normalized event storable exactly, or refuse it with a reason (pure, no I/O).

Two kinds of values parse from JSON but cannot be written as they are:

* text with a lone UTF-16 surrogate (``"\\ud800"``): no UTF-8 string holds it.  In an
  ordinary field it is stored escaped - the six characters ``\\ud800`` - so the event is
  kept; in the call id or the dedupe key it is refused (400), because an escaped key could
  collide with a different sender's key and dedupe would no longer be exact.
* numbers SQLite cannot hold: integers outside 64 bits (``10**400``, a ``SequenceNumber`` of
  ``2**70``) and non-finite floats (``1e999`` parses as ``inf``).  Inside ``extra`` they are
  kept as text; in the typed fields they are dropped (None) and their text is kept under
  ``extra["out_of_range"]``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from connector.model import CallEvent, PayloadError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KEY_FIELDS = ("call_id", "dedupe_key")
NUMBER_FIELDS = ("sequence", "sip_code", "talk_seconds", "ring_seconds", "quality_score", "cost")


def encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape(text: str) -> str:
    """``text`` with every character UTF-8 cannot carry written as a ``\\uXXXX`` escape."""
    return text if encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def in_range(value: Any) -> bool:
    """False for numbers SQLite cannot store exactly (huge integers, inf, nan)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def number_text(value: int | float) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than int -> str allows
        return f"<integer of about {value.bit_length() * 0.30103:.0f} digits>"


def safe_value(value: Any) -> Any:
    """A JSON value SQLite stores exactly: text escaped, out-of-range numbers as text."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, (int, float)) and not in_range(value):
        return number_text(value)
    if isinstance(value, dict):
        return {escape(str(key)): safe_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_value(item) for item in value]
    return value


def storable(event: CallEvent) -> CallEvent:
    """``event`` with every value storable exactly; PayloadError if a key cannot be."""
    for name in KEY_FIELDS:
        value = getattr(event, name)
        if isinstance(value, str) and not encodable(value):
            raise PayloadError(
                f"{name} {escape(value)!r} cannot be stored: it holds a lone UTF-16 surrogate, not text"
            )
    changes: dict[str, Any] = {}
    out_of_range: dict[str, str] = {}
    for name in NUMBER_FIELDS:
        value = getattr(event, name)
        if value is not None and not in_range(value):
            changes[name] = None
            out_of_range[name] = number_text(value)
    for name, value in event.to_dict().items():
        if name not in KEY_FIELDS and isinstance(value, str) and not encodable(value):
            changes[name] = escape(value)
    extra = safe_value(event.extra)
    if out_of_range:
        extra["out_of_range"] = {**extra.get("out_of_range", {}), **out_of_range}
    if extra != event.extra or out_of_range:
        changes["extra"] = extra
    return replace(event, **changes) if changes else event
