"""Signed sample events, as a sender would post them: the Sources tab's "Send test event"
and the screenshot generator.  A test event also carries ``X-Callsync-Test: 1`` (unsigned: it
only marks the event), so the store keeps it as a test (shown in Events, never a call in
progress, never written to the CRM)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

from standardwebhooks import Webhook

from connector.config import SourceConfig
from connector.receiver.hooks import TEST_HEADER
from connector.receiver.signatures import twilio_signature

__all__ = ["TEST_HEADER", "TEST_PHONE", "sample_payload", "sign_request"]

TEST_PHONE = "+15555550100"  # a fictional number (555-01xx)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_payload(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    """A realistic 'call started' event in the source's format (never an outcome: no CRM write)."""
    fmt = source.format if source.format != "auto" else {"standard": "standard", "twilio": "twilio"}.get(
        source.kind, "unlimcall"
    )
    if fmt == "twilio":
        form = {
            "CallSid": call_id, "AccountSid": "AC" + "0" * 32, "From": "+15005550006", "To": TEST_PHONE,
            "Direction": "outbound-api", "CallStatus": "initiated", "SequenceNumber": "0",
            "Timestamp": datetime.fromtimestamp(now, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "ApiVersion": "2010-04-01", "CallbackSource": "call-progress-events",
        }
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    if fmt == "standard":
        payload: dict[str, Any] = {"type": "call.ringing", "timestamp": _iso(now), "data": {
            "call_id": call_id, "from": "+15005550006", "to": TEST_PHONE, "direction": "outbound",
            "agent": "callsync-test"}}
    elif fmt == "dialercx":
        payload = {"event": "call.started", "timestamp": _iso(now), "data": {
            "call_id": call_id, "agent": "callsync-test", "phone_number": TEST_PHONE, "campaign": "test"}}
    else:
        payload = {"event": "call.initiated", "call_uuid": call_id, "from": "+15005550006", "to": TEST_PHONE,
                   "direction": "outbound", "initiated_at": _iso(now), "seat_id": "callsync-test"}
    return json.dumps(payload, separators=(",", ":")).encode(), "application/json"


def sign_request(source: SourceConfig, secret: str, body: bytes, content_type: str, url: str,
                 now: float, *, msg_id: str | None = None) -> dict[str, str]:
    """The headers the sender would add: HMAC-SHA256, Standard Webhooks or Twilio, per the source's kind.

    ``url`` is the public URL Twilio signs; ``msg_id`` the Standard Webhooks message id (a retry reuses it).
    """
    headers = {"Content-Type": content_type, "User-Agent": "callsync-test-event"}
    if source.kind == "standard":
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        when = datetime.fromtimestamp(int(now), tz=timezone.utc)
        return headers | {"webhook-id": msg_id, "webhook-timestamp": str(int(now)),
                          "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode())}
    if source.kind == "twilio":
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(body.decode(), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        return headers | {"X-Twilio-Signature": twilio_signature(secret, url, params)}
    content = body
    if source.timestamp_header:
        headers[source.timestamp_header] = str(int(now))
        content = f"{int(now)}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    headers[source.signature_header] = digest.hex() if source.signature_encoding == "hex" else (
        base64.b64encode(digest).decode())
    return headers


