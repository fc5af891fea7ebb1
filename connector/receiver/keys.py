"""Public keys in config (Telnyx, GoHighLevel, JWT) and the keys GoHighLevel publishes.

Pure: text in, a ``cryptography`` key object out, or ``ValueError`` with a sentence.  Keys are
parsed once per distinct text (``load_public_key`` is cached), so the request path never
parses PEM.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Union

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

PublicKey = Union[ed25519.Ed25519PublicKey, rsa.RSAPublicKey, ec.EllipticCurvePublicKey]

# GoHighLevel's webhook keys, as its Webhook Integration Guide publishes them
# (https://marketplace.gohighlevel.com/docs/webhook/WebhookIntegrationGuide): Ed25519 for
# ``x-ghl-signature``, RSA for the legacy ``x-wh-signature``.  Used when a ghl source sets none.
GHL_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----
"""
GHL_LEGACY_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""


@lru_cache(maxsize=64)
def load_public_key(text: str) -> PublicKey:
    """A public key from PEM, base64 SubjectPublicKeyInfo DER, or base64 of a raw 32-byte
    Ed25519 key (as the Telnyx portal shows it)."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = load_pem_public_key(stripped.encode())
        else:
            raw = base64.b64decode("".join(stripped.split()), validate=True)
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else load_der_public_key(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise ValueError(f"not a public key (PEM, base64 DER, or base64 of a raw Ed25519 key): {exc}") from None
    if not isinstance(key, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return key


def key_kind(key: PublicKey) -> str:
    """``ed25519``, ``rsa``, ``p256`` or ``ec`` (another curve)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa"
    return "p256" if isinstance(key.curve, ec.SECP256R1) else "ec"


def typed_key(text: str, *kinds: str) -> PublicKey:
    """``load_public_key`` that also insists on a key type (ValueError naming what it is)."""
    key = load_public_key(text)
    kind = key_kind(key)
    if kind not in kinds:
        raise ValueError(f"is a {kind} key; expected {' or '.join(kinds)}")
    return key


JWT_ALGORITHMS = {"rsa": "RS256", "p256": "ES256", "ed25519": "EdDSA"}
