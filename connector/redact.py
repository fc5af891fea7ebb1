"""Secrets kept out of sight: the receiver stores request headers with signatures and credentials
replaced (:func:`header_redactor`), and the event inspector shows payloads and headers for people with
anything else that looks secret masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from connector.formats.storable import escape

MASK = "••••••••"
REDACTED = "[redacted]"
# Request headers that carry a signature or a credential: never stored.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-api-key", "x-twilio-signature", "webhook-signature",
    "svix-signature", "x-vapi-secret", "x-retell-signature", "telnyx-signature-ed25519", "x-ghl-signature",
    "x-wh-signature",
})
_SECRET_NAME = re.compile(r"sig|secret|token|auth|passw|api[-_]?key|cookie|session|credential", re.I)
_SECRET_VALUE = re.compile(
    r"^(?:(?:bearer|basic|token)\s+\S+|whsec_\S+|sk_\S+|pit-[0-9a-f-]{20,}|v1,\S+|(?:sha256=)?[0-9a-f]{40,}"
    r"|[A-Za-z0-9+/_-]{32,}={0,2})$",
    re.I,
)


def header_redactor(*secret_names: str) -> Callable[[Mapping[str, str]], dict[str, str]]:
    """A function giving request headers as they are stored: :data:`SECRET_HEADERS` and ``secret_names``
    (a source's own signature or API key header) as ``[redacted]``, text UTF-8 cannot carry escaped.
    Made once per source: it runs on every request."""
    secret = SECRET_HEADERS | {name.lower() for name in secret_names if name}

    def redact(headers: Mapping[str, str]) -> dict[str, str]:
        stored: dict[str, str] = {}
        for name, value in headers.items():
            if not name.isascii():
                name = escape(name)
            stored[name] = REDACTED if name.lower() in secret else value if value.isascii() else escape(value)
        return stored

    return redact


def looks_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.match(value.strip()))


def mask_headers(headers: dict[str, Any]) -> dict[str, str]:
    """Headers as stored (the receiver already redacted signatures), plus anything that looks secret."""
    out = {}
    for name, value in headers.items():
        text = str(value)
        out[name] = text if text == REDACTED or not looks_secret(name, text) else MASK
    return out


def _mask_payload(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if isinstance(v, str) and _SECRET_NAME.search(str(k)) else _mask_payload(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_payload(v) for v in value]
    return value


def pretty_payload(body: str, content_type: str) -> str:
    """The request body for people: indented JSON, or one ``name = value`` line per form field."""
    if "x-www-form-urlencoded" in (content_type or ""):
        pairs = parse_qsl(body, keep_blank_values=True)
        return "\n".join(f"{k} = {MASK if _SECRET_NAME.search(k) else v}" for k, v in pairs)
    try:
        return json.dumps(_mask_payload(json.loads(body)), indent=2, ensure_ascii=False)
    except ValueError:
        return body


