"""Signature checks on raw bytes: table of accepted and refused requests."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from twilio.request_validator import RequestValidator

from connector.config import SourceConfig
from connector.receiver.signatures import Unauthorized, verify_hmac, verify_standard, verify_twilio
from tests.signing import standard_headers

BODY = b'{"event":"call.completed","call_uuid":"x"}'
NOW = 1_780_000_000


def sig(secret: str, content: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


HMAC = SourceConfig("d")
HMAC_TS = SourceConfig("d", signature_encoding="base64", timestamp_header="X-Ts", tolerance_seconds=300)


@pytest.mark.parametrize(
    "source, headers, secrets, reason",
    [
        (HMAC, {"X-Webhook-Signature": sig("k", BODY)}, ["k"], None),
        (HMAC, {"X-Webhook-Signature": "sha256=" + sig("k", BODY)}, ["k"], None),
        (HMAC, {"X-Webhook-Signature": sig("k", BODY).upper()}, ["k"], None),
        (HMAC, {"X-Webhook-Signature": sig("old", BODY)}, ["new", "old"], None),
        (HMAC, {"X-Webhook-Signature": sig("k", BODY)}, ["other"], "bad_signature"),
        (HMAC, {}, ["k"], "missing_signature"),
        (HMAC, {"X-Webhook-Signature": "zz"}, ["k"], "bad_signature"),
        (HMAC, {"X-Webhook-Signature": sig("k", BODY)[:-2]}, ["k"], "bad_signature"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", f"{NOW}.".encode() + BODY, "base64"), "X-Ts": str(NOW)}, ["k"], None),
        # milliseconds: the signed content holds the timestamp exactly as sent
        (HMAC_TS, {"X-Webhook-Signature": sig("k", f"{NOW * 1000}.".encode() + BODY, "base64"),
                   "X-Ts": str(NOW * 1000)}, ["k"], None),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", f"{NOW}.".encode() + BODY, "base64"), "X-Ts": str(NOW * 1000)},
         ["k"], "bad_signature"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", f"{(NOW - 301) * 1000}.".encode() + BODY, "base64"),
                   "X-Ts": str((NOW - 301) * 1000)}, ["k"], "stale_timestamp"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", b"%d." % (NOW - 301) + BODY, "base64"), "X-Ts": str(NOW - 301)},
         ["k"], "stale_timestamp"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", BODY, "base64")}, ["k"], "missing_signature"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", BODY, "base64"), "X-Ts": "yesterday"}, ["k"], "bad_signature"),
        (HMAC_TS, {"X-Webhook-Signature": sig("k", f"{NOW}.".encode() + BODY, "hex"), "X-Ts": str(NOW)}, ["k"],
         "bad_signature"),
    ],
)
def test_hmac_table(source, headers, secrets, reason):
    if reason is None:
        verify_hmac(source, secrets, BODY, headers, NOW)
    else:
        with pytest.raises(Unauthorized) as caught:
            verify_hmac(source, secrets, BODY, headers, NOW)
        assert caught.value.reason == reason


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
STD = SourceConfig("s", kind="standard")


def test_standard_accepts_svix_headers_and_unpadded_rotation_entries():
    headers = standard_headers(BODY, SECRET, "msg_1", at=NOW)
    svix = {"svix-id": headers["webhook-id"], "svix-timestamp": headers["webhook-timestamp"],
            "svix-signature": "v1a,AAAA " + headers["webhook-signature"]}
    verify_standard(STD, [SECRET], BODY, svix, NOW)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda h: h.pop("webhook-signature"), "missing_signature"),
        (lambda h: h.update({"webhook-signature": "v1abc"}), "bad_signature"),
        (lambda h: h.update({"webhook-signature": "v1,!!!notbase64"}), "bad_signature"),
        (lambda h: h.update({"webhook-id": "msg.1"}), "bad_signature"),
        (lambda h: h.update({"webhook-timestamp": str(NOW + 600)}), "stale_timestamp"),
    ],
)
def test_standard_refusals(mutate, reason):
    headers = standard_headers(BODY, SECRET, "msg_1", at=NOW)
    mutate(headers)
    with pytest.raises(Unauthorized) as caught:
        verify_standard(STD, [SECRET], BODY, headers, NOW)
    assert caught.value.reason == reason


TW = SourceConfig("t", kind="twilio")
PARAMS = {"CallSid": "CA1", "CallStatus": "completed", "To": "+14155550100", "Empty": ""}


@pytest.mark.parametrize(
    "signed_url, served_url",
    [
        ("https://hooks.example.com/hooks/t", "https://hooks.example.com/hooks/t"),
        ("https://hooks.example.com:443/hooks/t", "https://hooks.example.com/hooks/t"),
        ("https://hooks.example.com/hooks/t", "https://hooks.example.com:443/hooks/t"),
        ("https://hooks.example.com/hooks/t?x=1", "https://hooks.example.com/hooks/t?x=1"),
    ],
)
def test_twilio_urls_with_and_without_default_port(signed_url, served_url):
    from urllib.parse import urlencode

    signature = RequestValidator("tok").compute_signature(signed_url, PARAMS)
    verify_twilio(TW, ["tok"], urlencode(PARAMS).encode(), {"X-Twilio-Signature": signature}, served_url, True)


def test_twilio_json_body_is_checked_against_body_sha256():
    validator = RequestValidator("tok")
    body = b'{"CallSid":"CA1"}'
    url = f"https://h.example.com/hooks/t?bodySHA256={validator.compute_hash(body.decode())}"
    headers = {"X-Twilio-Signature": validator.compute_signature(url, {})}
    verify_twilio(TW, ["tok"], body, headers, url, False)
    with pytest.raises(Unauthorized):
        verify_twilio(TW, ["tok"], body + b" ", headers, url, False)


def test_twilio_without_public_url_refuses_with_a_hint():
    with pytest.raises(Unauthorized) as caught:
        verify_twilio(TW, ["tok"], b"", {"X-Twilio-Signature": "x"}, "", True)
    assert caught.value.reason == "no_public_url" and "public_url" in caught.value.message
