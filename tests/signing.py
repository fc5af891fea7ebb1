"""Test-side signers. Standard Webhooks and Twilio use the senders' own libraries, not our code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

from standardwebhooks import Webhook
from twilio.request_validator import RequestValidator


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def hmac_headers(body: bytes, secret: str, *, timestamp: int | None = None, encoding: str = "hex",
                 header: str = "X-Webhook-Signature", ts_header: str = "X-Webhook-Timestamp",
                 prefix: str = "") -> dict[str, str]:
    content = body if timestamp is None else f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    headers = {header: prefix + value, "Content-Type": "application/json"}
    if timestamp is not None:
        headers[ts_header] = str(timestamp)
    return headers


def standard_headers(body: bytes, secret: str, msg_id: str, *, at: float | None = None,
                     extra_signatures: tuple[str, ...] = ()) -> dict[str, str]:
    when = datetime.fromtimestamp(at if at is not None else time.time(), tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": " ".join((*extra_signatures, signature)),
        "Content-Type": "application/json",
    }


def twilio_request(url: str, params: dict[str, str], token: str) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(token).compute_signature(url, params)
    return urlencode(params).encode(), {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
