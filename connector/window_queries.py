"""What a search box entry in the window is (the window's queries live in the store's modules)."""

from __future__ import annotations

import re

_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]+$")


def search_kind(text: str) -> str:
    """What a search box entry probably is: ``phone`` (7+ digits) or ``call_id``."""
    text = text.strip()
    digits = sum(c.isdigit() for c in text)
    return "phone" if _PHONE_CHARS.match(text) and digits >= 7 else "call_id"
