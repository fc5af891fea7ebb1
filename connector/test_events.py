"""Signed sample events, as a sender would post them: the Sources tab's "Send test event"
and the screenshot generator.  A test event also carries ``X-Callsync-Test: 1`` (unsigned: it
only marks the event), so the store keeps it as a test (shown in Events, never a call in
progress, never written to the CRM).

Every kind and auth method has its sample and its signer.  Telnyx and GoHighLevel sign with
private keys callsync never holds; their test events (and JWTs for a ``jwt_public_key``) are
signed with the receiver's own in-memory key (:class:`connector.receiver.verify.SelfSigner`),
which the receiver accepts only as a test event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from standardwebhooks import Webhook

from connector.config import SourceConfig
from connector.receiver.hooks import TEST_HEADER
from connector.receiver.signatures import VAPI_SECRET_HEADER, retell_signature, twilio_signature
from connector.receiver.verify_keys import GHL_SIGNATURE, TELNYX_SIGNATURE, TELNYX_TIMESTAMP

__all__ = ["TEST_HEADER", "TEST_PHONE", "SampleRequest", "build_test_request", "sample_payload", "sign_request",
           "credentials_for_test"]

TEST_PHONE = "+15555550100"  # a fictional number (555-01xx)
CALLER = "+15005550006"
JSON = "application/json"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: Any, content_type: str = JSON) -> tuple[bytes, str]:
    return json.dumps(payload, separators=(",", ":")).encode(), content_type


def sample_payload(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    """A realistic 'call started' event in the source's format (never an outcome: no CRM write)."""
    fmt = source.payload_format
    if fmt == "auto":
        fmt = {"standard": "standard", "twilio": "twilio"}.get(source.kind, "unlimcall")
    builder = _BUILDERS.get(fmt)
    if builder:
        return builder(source, call_id, now)
    if fmt == "twilio":
        form = {
            "CallSid": call_id, "AccountSid": "AC" + "0" * 32, "From": CALLER, "To": TEST_PHONE,
            "Direction": "outbound-api", "CallStatus": "initiated", "SequenceNumber": "0",
            "Timestamp": datetime.fromtimestamp(now, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "ApiVersion": "2010-04-01", "CallbackSource": "call-progress-events",
        }
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    if fmt == "standard":
        payload: dict[str, Any] = {"type": "call.ringing", "timestamp": _iso(now), "data": {
            "call_id": call_id, "from": CALLER, "to": TEST_PHONE, "direction": "outbound",
            "agent": "callsync-test"}}
    elif fmt == "dialercx":
        payload = {"event": "call.started", "timestamp": _iso(now), "data": {
            "call_id": call_id, "agent": "callsync-test", "phone_number": TEST_PHONE, "campaign": "test"}}
    else:
        payload = {"event": "call.initiated", "call_uuid": call_id, "from": CALLER, "to": TEST_PHONE,
                   "direction": "outbound", "initiated_at": _iso(now), "seat_id": "callsync-test"}
    return _json(payload)


def _telnyx(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    return _json({"data": {"record_type": "event", "event_type": "call.initiated", "id": str(uuid.uuid4()),
                           "occurred_at": _iso(now), "payload": {
                               "call_leg_id": call_id, "call_session_id": call_id, "from": CALLER,
                               "to": TEST_PHONE, "direction": "outgoing", "state": "bridging",
                               "start_time": _iso(now)}}})


def _retell(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    return _json({"event": "call_started", "call": {
        "call_type": "phone_call", "call_id": call_id, "agent_id": "callsync-test", "call_status": "ongoing",
        "from_number": CALLER, "to_number": TEST_PHONE, "direction": "outbound",
        "start_timestamp": int(now * 1000)}})


def _vapi(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    return _json({"message": {"type": "status-update", "status": "ringing", "timestamp": int(now * 1000),
                              "call": {"id": call_id, "type": "outboundPhoneCall", "status": "ringing",
                                       "customer": {"number": TEST_PHONE}, "phoneNumber": {"number": CALLER}}}})


def _ghl(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    # GoHighLevel's InboundMessage shape; an SMS is not a call, so the test never reaches the CRM.
    return _json({"type": "InboundMessage", "locationId": "callsync-test", "attachments": [],
                  "body": "callsync test event", "contactId": "callsync-test", "contentType": "text/plain",
                  "conversationId": call_id, "dateAdded": _iso(now), "direction": "inbound",
                  "messageType": "SMS", "status": "delivered", "webhookId": str(uuid.uuid4())})


def _cloudevents(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    return _json({"specversion": "1.0", "type": "com.callsync.test.call.ringing", "source": "/callsync/test",
                  "id": str(uuid.uuid4()), "time": _iso(now), "subject": call_id,
                  "datacontenttype": JSON, "data": {"from": CALLER, "to": TEST_PHONE, "direction": "outbound"}},
                 "application/cloudevents+json")


def _generic(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    """A payload shaped by the source's own mapping: each mapped path holds a test value."""
    values = {"call_id": call_id, "event": "call.ringing", "event_id": str(uuid.uuid4()), "occurred_at": _iso(now),
              "from": CALLER, "to": TEST_PHONE, "direction": "outbound", "status": "ringing",
              "agent": "callsync-test", "campaign": "test"}
    payload: dict[str, Any] = {}
    for key, path in source.fields.items():
        if key in values:
            _put(payload, path.split("."), values[key])
    return _json(payload)


def _put(data: Any, path: list[str], value: Any) -> None:
    """Set ``value`` at a dotted path, making objects (or lists, for numeric parts) on the way."""
    for here, part in enumerate(path):
        last = here == len(path) - 1
        following: Any = value if last else ([] if path[here + 1].isdigit() else {})
        if isinstance(data, list):
            index = int(part) if part.isdigit() else 0
            while len(data) <= index:
                data.append({} if not last else None)
            if last or not isinstance(data[index], (dict, list)):
                data[index] = following
            data = data[index]
        else:
            if last or not isinstance(data.get(part), (dict, list)):
                data[part] = following
            data = data[part]


_BUILDERS = {"telnyx": _telnyx, "retell": _retell, "vapi": _vapi, "ghl": _ghl, "cloudevents": _cloudevents,
             "generic": _generic}


def sign_request(source: SourceConfig, secret: str, body: bytes, content_type: str, url: str,
                 now: float, *, msg_id: str | None = None, auth_secret: str | None = None,
                 test_key: ed25519.Ed25519PrivateKey | None = None) -> dict[str, str]:
    """The headers the sender would add: its signature (by the source's scheme) and, with an
    auth method, its credential (``auth_secret``, else ``secret``).

    ``url`` is the public URL Twilio signs; ``msg_id`` the Standard Webhooks message id (a retry
    reuses it); ``test_key`` signs for public-key kinds (Telnyx, GoHighLevel, a JWT public key).
    """
    headers = {"Content-Type": content_type, "User-Agent": "callsync-test-event"}
    headers |= _signature(source, secret, body, url, now, msg_id, test_key)
    if source.auth:
        headers |= _credential(source, auth_secret if auth_secret is not None else secret, now, test_key)[0]
    return headers


def _signature(source: SourceConfig, secret: str, body: bytes, url: str, now: float, msg_id: str | None,
               test_key: ed25519.Ed25519PrivateKey | None) -> dict[str, str]:
    scheme = source.signature_scheme
    if scheme == "standard":
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        when = datetime.fromtimestamp(int(now), tz=timezone.utc)
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(now)),
                "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode())}
    if scheme == "twilio":
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(body.decode(), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        return {"X-Twilio-Signature": twilio_signature(secret, url, params)}
    if scheme == "retell":
        return {"x-retell-signature": retell_signature(secret, body, int(now * 1000))}
    if scheme == "vapi_secret":
        return {VAPI_SECRET_HEADER: secret}
    if scheme in ("telnyx", "ghl"):
        if test_key is None:
            raise ValueError(f"a {scheme} test event is signed with the receiver's own key")
        if scheme == "telnyx":
            stamp = str(int(now))
            signature = test_key.sign(f"{stamp}|".encode() + body)
            return {TELNYX_TIMESTAMP: stamp, TELNYX_SIGNATURE: base64.b64encode(signature).decode()}
        return {GHL_SIGNATURE: base64.b64encode(test_key.sign(body)).decode()}
    if scheme != "hmac":
        return {}
    headers = {}
    content = body
    if source.timestamp_header:
        headers[source.timestamp_header] = str(int(now))
        content = f"{int(now)}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    headers[source.signature_header] = digest.hex() if source.signature_encoding == "hex" else (
        base64.b64encode(digest).decode())
    return headers


def _credential(source: SourceConfig, secret: str, now: float,
                test_key: ed25519.Ed25519PrivateKey | None) -> tuple[dict[str, str], dict[str, str]]:
    """``(headers, query)`` carrying the auth method's credential."""
    if source.auth == "api_key":
        if source.api_key_param and not source.api_key_header:
            return {}, {source.api_key_param: secret}
        return {source.api_key_header: secret}, {}
    if source.auth == "basic":
        pair = base64.b64encode(f"{source.basic_user}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}, {}
    token = secret
    if source.jwt:
        claims: dict[str, Any] = {"sub": "callsync-test", "iat": int(now), "exp": int(now) + 300}
        if source.jwt_audience:
            claims["aud"] = source.jwt_audience
        if source.jwt_issuer:
            claims["iss"] = source.jwt_issuer
        if source.jwt_public_key:
            if test_key is None:
                raise ValueError("a JWT for a public key is signed with the receiver's own key")
            token = jwt.encode(claims, test_key, algorithm="EdDSA")
        else:
            token = jwt.encode(claims, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}, {}


def credentials_for_test(source: SourceConfig) -> tuple[dict[str, str], str | None]:
    """The secret of each check the source needs (``{"signature": ..., "auth": ...}``), or a sentence
    naming the first one missing and where to put it."""
    from connector import secrets

    found: dict[str, str] = {}
    for role, user in secrets.secret_users(source).items():
        value = secrets.get_secret(user)
        if not value:
            what = "secret" if role == "signature" or user == secrets.source_user(source.name) else "auth credential"
            return {}, (f"No {what} for {source.name!r} yet ({user}): enter it and save, or set "
                        f"{secrets.env_name(user)}.")
        found[role] = value
    return found, None


@dataclass(slots=True)
class SampleRequest:
    body: bytes
    content_type: str
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


def build_test_request(source: SourceConfig, credentials: dict[str, str], call_id: str, url: str,
                       test_key: ed25519.Ed25519PrivateKey | None, now: float | None = None) -> SampleRequest:
    """The signed, marked test request for ``source``: ``credentials`` maps each role of
    :func:`connector.secrets.secret_users` (``signature``, ``auth``) to its secret."""
    now = time.time() if now is None else now
    body, content_type = sample_payload(source, call_id, now)
    signature = credentials.get("signature", "")
    headers = {"Content-Type": content_type, "User-Agent": "callsync-test-event"}
    headers |= _signature(source, signature, body, url, now, None, test_key)
    query: dict[str, str] = {}
    if source.auth:
        auth_headers, query = _credential(source, credentials.get("auth", ""), now, test_key)
        headers |= auth_headers
    headers[TEST_HEADER] = "1"
    return SampleRequest(body, content_type, headers, query)
