"""Signatures checked with public keys: Telnyx (Ed25519) and GoHighLevel (Ed25519, legacy RSA).

Nothing secret is needed.  Each function takes the keys to try and returns the one that
verified, so the caller can tell the configured key from the receiver's own test key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from connector.config import SourceConfig
from connector.receiver.keys import PublicKey
from connector.receiver.signatures import Unauthorized, _check_timestamp

TELNYX_SIGNATURE = "telnyx-signature-ed25519"
TELNYX_TIMESTAMP = "telnyx-timestamp"
GHL_SIGNATURE = "x-ghl-signature"
GHL_LEGACY_SIGNATURE = "x-wh-signature"


def _signature_bytes(value: str, header: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("bad_signature", f"{header} is not base64") from None
    if size is not None and len(raw) != size:
        raise Unauthorized("bad_signature", f"{header} is not a {size}-byte signature")
    return raw


def _ed25519(keys: Sequence[PublicKey], signature: bytes, message: bytes) -> PublicKey | None:
    for key in keys:
        if isinstance(key, ed25519.Ed25519PublicKey):
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return key
    return None


def verify_telnyx(source: SourceConfig, keys: Sequence[PublicKey], body: bytes, headers: Mapping[str, str],
                  now: float) -> PublicKey:
    """``telnyx-signature-ed25519`` (base64) over ``"{telnyx-timestamp}|{raw body}"``, the
    timestamp (unix seconds) within ``tolerance_seconds``."""
    given = (headers.get(TELNYX_SIGNATURE) or "").strip()
    if not given:
        raise Unauthorized("missing_signature", f"missing {TELNYX_SIGNATURE} header")
    raw_ts = headers.get(TELNYX_TIMESTAMP)
    _check_timestamp(raw_ts, source.tolerance_seconds, now, TELNYX_TIMESTAMP)
    signature = _signature_bytes(given, TELNYX_SIGNATURE, 64)
    key = _ed25519(keys, signature, f"{(raw_ts or '').strip()}|".encode() + body)
    if key is None:
        raise Unauthorized("bad_signature", f"{TELNYX_SIGNATURE} does not match the public key")
    return key


def verify_ghl(keys: Sequence[PublicKey], legacy_keys: Sequence[PublicKey], body: bytes,
               headers: Mapping[str, str]) -> PublicKey:
    """``x-ghl-signature``: Ed25519 over the raw body; without it the legacy ``x-wh-signature``:
    RSA PKCS#1 v1.5 with SHA-256 over the raw body.  Both base64."""
    current = (headers.get(GHL_SIGNATURE) or "").strip()
    if current:
        key = _ed25519(keys, _signature_bytes(current, GHL_SIGNATURE, 64), body)
        if key is None:
            raise Unauthorized("bad_signature", f"{GHL_SIGNATURE} does not match GoHighLevel's public key")
        return key
    legacy = (headers.get(GHL_LEGACY_SIGNATURE) or "").strip()
    if not legacy:
        raise Unauthorized("missing_signature", f"missing {GHL_SIGNATURE} (or legacy {GHL_LEGACY_SIGNATURE}) header")
    signature = _signature_bytes(legacy, GHL_LEGACY_SIGNATURE)
    for key in legacy_keys:
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            return key
    raise Unauthorized("bad_signature", f"{GHL_LEGACY_SIGNATURE} does not match GoHighLevel's legacy public key")
