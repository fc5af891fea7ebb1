""""Send test event" for every kind and auth method: the sample request it builds passes the
source's own checks and normalizes, and one signed with the receiver's key is always a test."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from connector import formats
from connector.config import ServerConfig, parse_source
from connector.formats.generic import mapping_for
from connector.receiver.verify import RequestParts, SelfSigner, verify_request
from connector.secrets import secret_users
from connector.test_events import TEST_HEADER, build_test_request
from tests.sender_signing import Ed25519Pair, pem, rsa_pair

TELNYX = Ed25519Pair()
GENERIC = {"call_id": "call.ref", "event": "evt.kind", "from": "call.legs.0.number", "to": "call.legs.1.number",
           "status": "call.state", "occurred_at": "evt.at"}
KINDS = {
    "hmac": {"kind": "hmac", "timestamp_header": "X-Webhook-Timestamp"},
    "standard": {"kind": "standard"},
    "twilio": {"kind": "twilio"},
    "telnyx": {"kind": "telnyx", "public_key": TELNYX.raw_b64},
    "ghl": {"kind": "ghl"},
    "retell": {"kind": "retell"},
    "vapi": {"kind": "vapi"},
    "vapi_hmac": {"kind": "vapi", "signature": "hmac"},
    "cloudevents": {"kind": "cloudevents", "signature": "standard"},
    "generic": {"kind": "generic", "signature": "hmac", "fields": GENERIC},
    "api_key": {"kind": "cloudevents", "auth": "api_key"},
    "api_key_param": {"kind": "generic", "auth": "api_key", "api_key_header": "", "api_key_param": "key",
                      "fields": GENERIC},
    "basic": {"kind": "telnyx", "public_key": TELNYX.raw_b64, "auth": "basic", "basic_user": "dialer"},
    "bearer": {"kind": "vapi", "auth": "bearer"},
    "jwt": {"kind": "retell", "auth": "bearer", "jwt": True, "jwt_audience": "callsync"},
    "jwt_public": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_public_key": pem(rsa_pair().public_key())},
}
SECRETS = {"signature": "whsec_c2lnbmluZy1rZXktZm9yLXRlc3QtZXZlbnRzLTMyYg==", "auth": "auth-credential-0123456789abcdef"}
URL = "https://tunnel.example.com/hooks/s"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_and_auth_method_sends_a_test_event_that_verifies(name):
    source = parse_source("s", KINDS[name])
    signer = SelfSigner()
    credentials = {role: SECRETS[role] for role in secret_users(source)}
    if set(credentials) == {"auth"}:  # a source with only an auth method keeps it in source:<name>
        credentials = {"auth": SECRETS["auth"]}
    users = secret_users(source)
    request = build_test_request(source, credentials, "test-call-1", URL, signer.private_key)
    assert request.headers[TEST_HEADER] == "1"
    by_user = {users[role]: [value] for role, value in credentials.items() if role in users}
    parts = RequestParts(request.body, CIMultiDict(request.headers), request.query, url=URL,
                         is_form=request.content_type.startswith("application/x-www-form-urlencoded"))
    test_signed = verify_request(source, ServerConfig(), parts, lambda user: by_user.get(user, []),
                                 now=__import__("time").time(), test_key=signer.public_key)
    public_key_checks = name in ("telnyx", "ghl", "basic", "jwt_public")
    assert test_signed is public_key_checks
    events = formats.normalize(request.body, request.content_type, request.headers,
                               format_hint=source.payload_format, mapping=mapping_for(source.fields, source.status_map))
    assert events and all(e.status not in ("completed", "busy", "no-answer", "failed", "voicemail") for e in events)
