"""The signature and auth checks of the platform kinds, pure: requests signed by independent
implementations verify; anything else - including hypothesis-generated junk - is refused with
Unauthorized / Forbidden and never raises anything else (which the receiver would turn into a 5xx)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from connector.config import ServerConfig, parse_source
from connector.receiver.auth import client_address
from connector.receiver.signatures import Forbidden, Unauthorized
from connector.receiver.verify import RequestParts, SelfSigner, verify_request
from tests.sender_signing import (
    Ed25519Pair,
    basic,
    bearer_jwt,
    ghl_headers,
    ghl_legacy_headers,
    p256_pair,
    pem,
    retell_headers,
    rsa_pair,
    telnyx_headers,
)

NOW = time.time()
BODY = b'{"data":{"event_type":"call.hangup","id":"e1","payload":{"call_leg_id":"leg-1"}}}'
SECRET = "s3cret-value-of-thirty-two-bytes!"
OTHER = "another-secret-of-thirty-two-byte"
TELNYX = Ed25519Pair()
GHL = Ed25519Pair()
GHL_RSA = rsa_pair()
JWT_RSA = rsa_pair()
JWT_P256 = p256_pair()
JWT_ED = Ed25519Pair()
GENERIC = {"call_id": "call.ref", "event": "evt.kind"}

SOURCES = {
    "telnyx": {"kind": "telnyx", "public_key": TELNYX.raw_b64},
    "ghl": {"kind": "ghl", "public_key": GHL.pem, "legacy_public_key": pem(GHL_RSA.public_key())},
    "retell": {"kind": "retell"},
    "vapi": {"kind": "vapi"},
    "api_key": {"kind": "generic", "auth": "api_key", "api_key_param": "key", "fields": GENERIC},
    "basic": {"kind": "generic", "auth": "basic", "basic_user": "dialer", "fields": GENERIC},
    "bearer": {"kind": "cloudevents", "auth": "bearer"},
    "jwt_hs": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_audience": "callsync", "jwt_issuer": "crm"},
    "jwt_rsa": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_public_key": pem(JWT_RSA.public_key())},
    "jwt_p256": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_public_key": pem(JWT_P256.public_key())},
    "jwt_ed": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_public_key": JWT_ED.pem},
    "both": {"kind": "cloudevents", "signature": "standard", "auth": "api_key"},
    "allow": {"kind": "retell", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"]},
}
CREDENTIALS = {"source:s": [SECRET], "source:s:auth": [OTHER]}


def check(name: str, headers: dict[str, str], *, body: bytes = BODY, query: dict | None = None,
          peer: str = "203.0.113.9", forwarded: tuple[str, ...] = (), now: float = NOW,
          trusted: list[str] | None = None, test_key=None) -> bool:
    source = parse_source("s", SOURCES[name])
    request = RequestParts(body=body, headers=CIMultiDict(headers), query=query or {}, peer=peer, forwarded_for=forwarded)
    return verify_request(source, ServerConfig(trusted_proxies=trusted or []), request,
                          lambda user: CREDENTIALS.get(user, []), now, test_key)


def refused(reason: str, name: str, headers: dict[str, str], **kw) -> None:
    with pytest.raises(Unauthorized) as error:
        check(name, headers, **kw)
    assert error.value.reason == reason, error.value.message


# -- requests signed by the sender's own scheme verify -----------------------------------------

@pytest.mark.parametrize(
    "name, headers",
    [
        ("telnyx", lambda: telnyx_headers(TELNYX, BODY, at=NOW)),
        ("ghl", lambda: ghl_headers(GHL, BODY)),
        ("ghl", lambda: ghl_legacy_headers(GHL_RSA, BODY)),
        ("retell", lambda: retell_headers(SECRET, BODY, at=NOW)),
        ("vapi", lambda: {"X-Vapi-Secret": SECRET}),
        ("basic", lambda: basic("dialer", SECRET)),
        ("bearer", lambda: {"Authorization": f"Bearer {SECRET}"}),
        ("jwt_hs", lambda: bearer_jwt(SECRET, "HS256", aud="callsync", iss="crm")),
        ("jwt_rsa", lambda: bearer_jwt(JWT_RSA, "RS256")),
        ("jwt_p256", lambda: bearer_jwt(JWT_P256, "ES256")),
        ("jwt_ed", lambda: bearer_jwt(JWT_ED.private, "EdDSA")),
        ("api_key", lambda: {"X-API-Key": SECRET}),
        ("allow", lambda: retell_headers(SECRET, BODY, at=NOW)),
    ],
)
def test_signed_by_the_senders_scheme_verifies(name, headers):
    assert check(name, headers()) is False  # verified, and not by the test key


def test_api_key_in_the_query_parameter():
    assert check("api_key", {}, query={"key": SECRET}) is False
    refused("bad_auth", "api_key", {}, query={"key": "nope"})
    refused("missing_auth", "api_key", {})


def test_a_source_with_a_signature_and_an_auth_method_needs_both():
    from tests.signing import standard_headers

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    CREDENTIALS["source:s"] = [secret]
    try:
        signed = standard_headers(BODY, secret, "msg_1", at=NOW)
        assert check("both", signed | {"X-API-Key": OTHER}) is False
        refused("missing_auth", "both", signed)  # signature alone is not enough
        refused("bad_auth", "both", signed | {"X-API-Key": secret})  # the auth credential is source:s:auth
        refused("missing_signature", "both", {"X-API-Key": OTHER})
    finally:
        CREDENTIALS["source:s"] = [SECRET]


# -- and every way of getting it wrong is a 401 with its reason ----------------------------------

@pytest.mark.parametrize(
    "reason, name, headers, kw",
    [
        ("missing_signature", "telnyx", {}, {}),
        ("missing_signature", "telnyx", {"telnyx-signature-ed25519": "AAAA"}, {}),  # no timestamp
        ("stale_timestamp", "telnyx", telnyx_headers(TELNYX, BODY, at=NOW - 301), {}),
        ("bad_signature", "telnyx", telnyx_headers(Ed25519Pair(), BODY, at=NOW), {}),  # another account's key
        ("bad_signature", "telnyx", telnyx_headers(TELNYX, BODY + b" ", at=NOW), {"body": BODY}),
        ("bad_signature", "telnyx", {**telnyx_headers(TELNYX, BODY, at=NOW), "telnyx-signature-ed25519": "%%"}, {}),
        ("missing_signature", "ghl", {}, {}),
        ("bad_signature", "ghl", ghl_headers(Ed25519Pair(), BODY), {}),
        ("bad_signature", "ghl", ghl_legacy_headers(rsa_pair(), BODY), {}),
        ("bad_signature", "ghl", {"x-wh-signature": "bm90IGEgc2lnbmF0dXJl"}, {}),
        ("missing_signature", "retell", {}, {}),
        ("bad_signature", "retell", {"x-retell-signature": "d=abc,v=1"}, {}),
        ("stale_timestamp", "retell", retell_headers(SECRET, BODY, at=NOW - 600), {}),
        ("bad_signature", "retell", retell_headers(OTHER, BODY, at=NOW), {}),
        ("missing_signature", "vapi", {}, {}),
        ("bad_signature", "vapi", {"X-Vapi-Secret": OTHER}, {}),
        ("missing_auth", "basic", {}, {}),
        ("bad_auth", "basic", basic("someone", SECRET), {}),
        ("bad_auth", "basic", basic("dialer", OTHER), {}),
        ("bad_auth", "basic", {"Authorization": "Basic !!!"}, {}),
        ("bad_auth", "basic", {"Authorization": f"Bearer {SECRET}"}, {}),
        ("bad_auth", "bearer", {"Authorization": f"Bearer {OTHER}"}, {}),
        ("bad_auth", "jwt_hs", bearer_jwt(OTHER, "HS256", aud="callsync", iss="crm"), {}),
        ("bad_auth", "jwt_hs", bearer_jwt(SECRET, "HS256", aud="someone-else", iss="crm"), {}),
        ("bad_auth", "jwt_hs", bearer_jwt(SECRET, "HS256", iss="crm"), {}),  # aud required when configured
        ("bad_auth", "jwt_hs", bearer_jwt(SECRET, "HS256", aud="callsync", iss="other"), {}),
        ("expired_token", "jwt_hs", bearer_jwt(SECRET, "HS256", aud="callsync", iss="crm", exp=int(NOW) - 60), {}),
        ("expired_token", "jwt_hs", bearer_jwt(SECRET, "HS256", aud="callsync", iss="crm", nbf=int(NOW) + 600), {}),
        ("bad_auth", "jwt_rsa", bearer_jwt(rsa_pair(), "RS256"), {}),
        ("bad_auth", "jwt_rsa", bearer_jwt(SECRET, "HS256"), {}),  # no algorithm switch to HMAC
        ("bad_auth", "jwt_p256", bearer_jwt(p256_pair(), "ES256"), {}),
        ("bad_auth", "jwt_ed", {"Authorization": "Bearer not.a.jwt"}, {}),
    ],
)
def test_refusals(reason, name, headers, kw):
    refused(reason, name, headers, **kw)


def test_jwt_alg_none_is_refused():
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).decode().rstrip("=")
    claims = base64.urlsafe_b64encode(json.dumps({"exp": NOW + 60}).encode()).decode().rstrip("=")
    refused("bad_auth", "jwt_hs", {"Authorization": f"Bearer {unsigned}.{claims}."})


def test_no_secret_is_its_own_reason():
    with pytest.raises(Unauthorized) as error:
        verify_request(parse_source("s", SOURCES["retell"]), ServerConfig(),
                       RequestParts(BODY, CIMultiDict(retell_headers(SECRET, BODY)), {}), lambda user: [], NOW)
    assert error.value.reason == "no_secret" and error.value.status == 401


# -- IP allowlist and the client address behind a proxy ----------------------------------------

@pytest.mark.parametrize(
    "peer, forwarded, trusted, expected",
    [
        ("203.0.113.9", (), [], "203.0.113.9"),
        ("203.0.113.9", ("198.51.100.1",), [], "203.0.113.9"),  # an untrusted peer's header is ignored
        ("127.0.0.1", ("198.51.100.1",), ["127.0.0.1"], "198.51.100.1"),
        ("127.0.0.1", ("6.6.6.6, 198.51.100.1",), ["127.0.0.1"], "198.51.100.1"),  # left entries are the client's
        ("127.0.0.1", ("198.51.100.1, 10.0.0.2",), ["127.0.0.1", "10.0.0.0/8"], "198.51.100.1"),
        ("127.0.0.1", ("6.6.6.6", "198.51.100.1"), ["127.0.0.1"], "198.51.100.1"),  # repeated headers
        ("127.0.0.1", (), ["127.0.0.1"], "127.0.0.1"),
        ("::1", ("2001:db8::5",), ["::1"], "2001:db8::5"),
    ],
)
def test_client_address(peer, forwarded, trusted, expected):
    assert client_address(peer, forwarded, trusted) == expected


def test_allowlist_is_403_and_counts_the_real_client_behind_a_trusted_proxy():
    signed = retell_headers(SECRET, BODY, at=NOW)
    assert check("allow", signed, peer="203.0.113.200") is False
    assert check("allow", signed, peer="2001:db8::1") is False
    with pytest.raises(Forbidden) as error:
        check("allow", signed, peer="198.51.100.1")
    assert (error.value.status, error.value.reason) == (403, "ip_not_allowed")
    # behind the tunnel: the tunnel (loopback) is trusted, X-Forwarded-For names the client
    assert check("allow", signed, peer="127.0.0.1", forwarded=("203.0.113.5",), trusted=["127.0.0.1"]) is False
    with pytest.raises(Forbidden):  # not trusted: the header proves nothing
        check("allow", signed, peer="127.0.0.1", forwarded=("203.0.113.5",))
    with pytest.raises(Forbidden):  # a forged entry left of the proxy's own does not help
        check("allow", signed, peer="127.0.0.1", forwarded=("203.0.113.5, 198.51.100.1",), trusted=["127.0.0.1"])


# -- the receiver's own test key ------------------------------------------------------------------

def test_the_receivers_test_key_verifies_public_key_kinds_and_says_so():
    signer = SelfSigner()
    pair = Ed25519Pair()
    pair.private, pair.public = signer.private_key, signer.public_key
    assert check("telnyx", telnyx_headers(pair, BODY, at=NOW), test_key=signer.public_key) is True
    assert check("ghl", ghl_headers(pair, BODY), test_key=signer.public_key) is True
    assert check("jwt_rsa", bearer_jwt(signer.private_key, "EdDSA"), test_key=signer.public_key) is True
    refused("bad_signature", "telnyx", telnyx_headers(pair, BODY, at=NOW))  # without it: just another key
    assert check("telnyx", telnyx_headers(TELNYX, BODY, at=NOW), test_key=signer.public_key) is False


# -- junk never escapes as anything but a refusal -----------------------------------------------

header_text = st.text(max_size=80)
junk_headers = st.dictionaries(
    st.sampled_from(["telnyx-signature-ed25519", "telnyx-timestamp", "x-ghl-signature", "x-wh-signature",
                     "x-retell-signature", "X-Vapi-Secret", "Authorization", "X-API-Key", "webhook-id",
                     "webhook-timestamp", "webhook-signature"]),
    st.one_of(header_text, st.sampled_from([
        "Bearer ", "Basic ", "Bearer a.b.c", "Basic OjpfOg==", "v=1,d=00", f"v={int(NOW * 1000)},d=" + "0" * 64,
        str(int(NOW)), "A" * 88, "====", "Bearer eyJhbGciOiJub25lIn0.e30.", "v1,AAAA",
    ])),
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SOURCES)), headers=junk_headers, body=st.binary(max_size=200),
       query=st.dictionaries(st.sampled_from(["key", "x"]), header_text, max_size=2),
       peer=st.one_of(st.none(), st.sampled_from(["203.0.113.1", "::1", "junk", "[2001:db8::1]:80"])),
       forwarded=st.lists(header_text, max_size=2))
def test_junk_is_always_refused_never_an_exception(name, headers, body, query, peer, forwarded):
    try:
        check(name, headers, body=body, query=query, peer=peer, forwarded=tuple(forwarded),
              trusted=["::1"], test_key=SelfSigner().public_key)
    except Unauthorized as exc:
        assert exc.status in (401, 403) and exc.reason
    else:
        pytest.fail(f"junk verified for {name}: {headers} {query}")  # no generated value is the secret


def test_whatever_a_verifier_raises_is_a_refusal(monkeypatch):
    from connector.receiver import verify

    def broken(*args, **kwargs):
        raise RuntimeError("library bug")

    monkeypatch.setattr(verify, "verify_retell", broken)
    refused("bad_signature", "retell", retell_headers(SECRET, BODY, at=NOW))
