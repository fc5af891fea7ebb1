"""Test-side signers for the platform kinds, built on independent implementations: ``cryptography``
key pairs made here (Telnyx, GoHighLevel), PyJWT to mint tokens, the ``cloudevents`` SDK to
build CloudEvents requests.  Retell publishes no Python signer; its scheme (HMAC-SHA256 over
``body + "<ms>"``, ``v=<ms>,d=<hex>``) is written out here from Retell's documentation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


class Ed25519Pair:
    def __init__(self) -> None:
        self.private = ed25519.Ed25519PrivateKey.generate()
        self.public = self.private.public_key()

    @property
    def raw_b64(self) -> str:
        """The public key as the Telnyx portal shows it: base64 of the raw 32 bytes."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def pem(self) -> str:
        return pem(self.public)

    def sign_b64(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()


def pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(private_key) -> str:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


def rsa_pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def p256_pair() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def telnyx_headers(pair: Ed25519Pair, body: bytes, *, at: float | None = None) -> dict[str, str]:
    ts = str(int(at if at is not None else time.time()))
    return {"telnyx-timestamp": ts, "telnyx-signature-ed25519": pair.sign_b64(f"{ts}|".encode() + body)}


def ghl_headers(pair: Ed25519Pair, body: bytes) -> dict[str, str]:
    return {"x-ghl-signature": pair.sign_b64(body)}


def ghl_legacy_headers(key: rsa.RSAPrivateKey, body: bytes) -> dict[str, str]:
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {"x-wh-signature": base64.b64encode(signature).decode()}


def retell_headers(api_key: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    ms = int((at if at is not None else time.time()) * 1000)
    digest = hmac.new(api_key.encode(), body + str(ms).encode(), hashlib.sha256).hexdigest()
    return {"x-retell-signature": f"v={ms},d={digest}"}


def bearer_jwt(key, algorithm: str, **claims) -> dict[str, str]:
    """``Authorization: Bearer <JWT>`` minted with PyJWT (``key``: a secret or a private key)."""
    now = int(time.time())
    payload = {"iat": now, "exp": now + 300, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return {"Authorization": "Bearer " + jwt.encode(payload, key, algorithm=algorithm)}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def cloudevent_requests(attributes: dict, data: dict) -> dict[str, tuple[dict[str, str], bytes]]:
    """The same event as the SDK writes it in structured and binary mode: ``{mode: (headers, body)}``."""
    from cloudevents.core.bindings import http
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    event = CloudEvent(attributes=dict(attributes), data=data)
    structured = http.to_structured(event, JSONFormat())
    binary = http.to_binary(event, JSONFormat())
    return {"structured": (dict(structured.headers), structured.body), "binary": (dict(binary.headers), binary.body)}


def cloudevent_batch(events: list[tuple[dict, dict]]) -> tuple[dict[str, str], bytes]:
    """A batch (``application/cloudevents-batch+json``) of SDK-serialized events."""
    from cloudevents.core.bindings import http
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    bodies = [http.to_structured(CloudEvent(attributes=dict(a), data=d), JSONFormat()).body for a, d in events]
    return {"Content-Type": "application/cloudevents-batch+json"}, b"[" + b",".join(bodies) + b"]"
