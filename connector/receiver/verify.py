"""Which checks a source's requests pass, in order: IP allowlist (403), the secrets it needs,
its signature, its auth method (401).  Both a signature and an auth method must pass when a
source has both.

:func:`verify_request` works on :class:`RequestParts` (plain data, no aiohttp), so every check
can be driven with arbitrary bytes in tests.  Whatever a verifier or crypto library raises
becomes a 401: a forged or mangled request never turns into a 5xx the sender would retry.

The window's "Send test event" must work for public-key kinds too, but callsync does not hold
Telnyx's or GoHighLevel's private keys.  The receiver therefore makes its own Ed25519 key at
start-up (:class:`SelfSigner`, memory only, never written anywhere); a request signed with it
verifies and is always stored as a test event: never synced to the CRM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from connector.config import ServerConfig, SourceConfig
from connector.receiver import auth
from connector.receiver.keys import GHL_LEGACY_PUBLIC_KEY, GHL_PUBLIC_KEY, PublicKey, typed_key
from connector.receiver.signatures import (
    Unauthorized,
    verify_hmac,
    verify_retell,
    verify_standard,
    verify_twilio,
    verify_vapi_secret,
)
from connector.receiver.verify_keys import verify_ghl, verify_telnyx
from connector.secrets import secret_users

log = logging.getLogger(__name__)


class NoSecret(Unauthorized):
    """A check needs a secret that is neither in the keyring nor in the environment."""

    def __init__(self, role: str, user: str) -> None:
        super().__init__("no_secret", f"this source has no {role} secret configured")
        self.user = user


class SelfSigner:
    """The receiver's own Ed25519 key for signed test events (memory only)."""

    def __init__(self) -> None:
        self.private_key = ed25519.Ed25519PrivateKey.generate()
        self.public_key = self.private_key.public_key()


@dataclass(frozen=True, slots=True)
class RequestParts:
    body: bytes
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy, multidict.CIMultiDict)
    query: Mapping[str, str]
    url: str = ""  # the public URL the sender called (Twilio signs it); "" when [server] public_url is unset
    is_form: bool = False
    peer: str | None = None  # the TCP peer's address
    forwarded_for: tuple[str, ...] = ()  # X-Forwarded-For values, in order


def verify_request(
    source: SourceConfig,
    server: ServerConfig,
    request: RequestParts,
    secrets_for: Callable[[str], Sequence[str]],
    now: float,
    test_key: PublicKey | None = None,
) -> bool:
    """Raise Unauthorized / Forbidden, or return whether a test key (not the sender's) signed it."""
    auth.check_allowlist(source, auth.client_address(request.peer, request.forwarded_for, server.trusted_proxies))
    credentials: dict[str, Sequence[str]] = {}
    for role, user in secret_users(source).items():
        credentials[role] = secrets_for(user)
        if not credentials[role]:
            raise NoSecret(role, user)
    extra = (test_key,) if test_key is not None else ()
    try:
        signed_by = _signature(source, credentials.get("signature", ()), request, now, extra)
        authed_by = _auth(source, credentials.get("auth", ()), request, now, extra)
    except Unauthorized:
        raise
    except Exception as exc:  # noqa: BLE001 - a verifier must never turn a bad request into a 5xx
        log.warning("source %s: request could not be verified (%s: %s); refused", source.name, type(exc).__name__, exc)
        raise Unauthorized("bad_signature", "the request's credentials could not be checked") from None
    return any(key is not None and key in extra for key in (signed_by, authed_by))


def _signature(source: SourceConfig, secrets: Sequence[str], request: RequestParts, now: float,
               extra: Sequence[PublicKey]) -> PublicKey | None:
    scheme = source.signature_scheme
    headers = request.headers
    if scheme == "hmac":
        verify_hmac(source, secrets, request.body, headers, now)
    elif scheme == "standard":
        verify_standard(source, secrets, request.body, headers, now)
    elif scheme == "twilio":
        verify_twilio(source, secrets, request.body, headers, request.url, request.is_form)
    elif scheme == "retell":
        verify_retell(source, secrets, request.body, headers, now)
    elif scheme == "vapi_secret":
        verify_vapi_secret(secrets, headers)
    elif scheme == "telnyx":
        return verify_telnyx(source, [typed_key(source.public_key, "ed25519"), *extra], request.body, headers, now)
    elif scheme == "ghl":
        keys = [typed_key(source.public_key or GHL_PUBLIC_KEY, "ed25519"), *extra]
        legacy = [typed_key(source.legacy_public_key or GHL_LEGACY_PUBLIC_KEY, "rsa")]
        return verify_ghl(keys, legacy, request.body, headers)
    return None


def _auth(source: SourceConfig, secrets: Sequence[str], request: RequestParts, now: float,
          extra: Sequence[PublicKey]) -> PublicKey | None:
    if source.auth == "api_key":
        auth.check_api_key(source, secrets, request.headers, request.query)
    elif source.auth == "basic":
        auth.check_basic(source, secrets, request.headers)
    elif source.auth == "bearer":
        return auth.check_bearer(source, secrets, request.headers, now, extra if source.jwt else ())
    return None
