"""Per-source authentication on top of (or instead of) a signature: an API key, HTTP Basic, a
bearer token or a JWT, and an IP allowlist.

Pure functions over header/query mappings; every comparison of a credential is constant-time
(``hmac.compare_digest``).  Each raises :class:`Unauthorized` (401) or :class:`Forbidden` (403,
the allowlist) with a reason that is counted; nothing here logs a credential.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import jwt

from connector.config import SourceConfig, network
from connector.receiver.keys import JWT_ALGORITHMS, PublicKey, key_kind, typed_key
from connector.receiver.signatures import Forbidden, Unauthorized

JWT_LEEWAY_SECONDS = 30  # clock skew allowed on exp / nbf


def same(given: str, expected: str) -> bool:
    """Constant-time equality of two texts (UTF-8; a lone surrogate never matches)."""
    try:
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _any_same(given: str, secrets: Sequence[str]) -> bool:
    matched = False
    for secret in secrets:  # no early exit: the time does not tell which secret matched
        matched |= same(given, secret)
    return matched


def check_api_key(source: SourceConfig, secrets: Sequence[str], headers: Mapping[str, str],
                  query: Mapping[str, str]) -> None:
    """The key in ``api_key_header`` (default ``X-API-Key``) or, when set, the ``api_key_param``
    query parameter."""
    given = headers.get(source.api_key_header) if source.api_key_header else None
    where = source.api_key_header
    if given is None and source.api_key_param:
        given, where = query.get(source.api_key_param), f"?{source.api_key_param}="
    if not given:
        raise Unauthorized("missing_auth", f"missing API key ({where or '?' + source.api_key_param + '='})")
    if not _any_same(given.strip(), secrets):
        raise Unauthorized("bad_auth", "API key does not match")


def _authorization(headers: Mapping[str, str], scheme: str) -> str:
    value = (headers.get("Authorization") or "").strip()
    prefix, _, credential = value.partition(" ")
    if not value:
        raise Unauthorized("missing_auth", "missing Authorization header")
    if prefix.lower() != scheme.lower() or not credential.strip():
        raise Unauthorized("bad_auth", f"Authorization is not {scheme} credentials")
    return credential.strip()


def check_basic(source: SourceConfig, secrets: Sequence[str], headers: Mapping[str, str]) -> None:
    """``Authorization: Basic base64(user:password)``: ``basic_user`` from config, the password is the secret."""
    credential = _authorization(headers, "Basic")
    try:
        user, sep, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        raise Unauthorized("bad_auth", "Basic credentials are not base64 of user:password") from None
    if not sep:
        raise Unauthorized("bad_auth", "Basic credentials are not base64 of user:password")
    user_ok = same(user, source.basic_user)
    if not (_any_same(password, secrets) & user_ok):
        raise Unauthorized("bad_auth", "user name or password does not match")


def check_bearer(source: SourceConfig, secrets: Sequence[str], headers: Mapping[str, str], now: float,
                 extra_keys: Iterable[PublicKey] = ()) -> PublicKey | None:
    """``Authorization: Bearer <secret>``, or with ``jwt`` a JWT: HS256 with the secret, or
    RS256/ES256/EdDSA with ``jwt_public_key``; ``exp``/``nbf`` always, ``aud``/``iss`` when set.
    Returns the key of ``extra_keys`` that verified the token, if it was one of those."""
    token = _authorization(headers, "Bearer")
    if not source.jwt:
        if not _any_same(token, secrets):
            raise Unauthorized("bad_auth", "bearer token does not match")
        return None
    candidates: list[tuple[object, str, PublicKey | None]] = []
    if source.jwt_public_key:
        key = typed_key(source.jwt_public_key, *JWT_ALGORITHMS)
        candidates.append((key, JWT_ALGORITHMS[key_kind(key)], None))
    else:
        candidates += [(secret.encode("utf-8"), "HS256", None) for secret in secrets]
    candidates += [(key, JWT_ALGORITHMS[key_kind(key)], key) for key in extra_keys]
    failure = Unauthorized("bad_auth", "JWT signature does not match")
    for key, algorithm, marker in candidates:
        try:
            _decode_at(token, key, algorithm, source, now)
        except jwt.ExpiredSignatureError:
            failure = Unauthorized("expired_token", "JWT has expired (exp)")
        except jwt.ImmatureSignatureError:
            failure = Unauthorized("expired_token", "JWT is not valid yet (nbf)")
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError, jwt.MissingRequiredClaimError) as exc:
            failure = Unauthorized("bad_auth", f"JWT claims refused: {exc}")
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError):
            failure = Unauthorized("bad_auth", "not a JWT callsync can verify")
        else:
            return marker
    raise failure


def _decode_at(token: str, key: object, algorithm: str, source: SourceConfig, now: float) -> None:
    """``jwt.decode`` (signature, algorithm, ``aud``, ``iss``), then ``exp``/``nbf`` against
    ``now``: the receiver's clock, so a test clock and the receiver agree."""
    claims = jwt.decode(
        token, key, algorithms=[algorithm],  # type: ignore[arg-type]
        audience=source.jwt_audience or None, issuer=source.jwt_issuer or None,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                 "verify_aud": bool(source.jwt_audience), "verify_iss": bool(source.jwt_issuer),
                 "require": ["aud"] * bool(source.jwt_audience) + ["iss"] * bool(source.jwt_issuer)},
    )
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _number(claims[name]):
            raise jwt.DecodeError(f"{name} must be a number")
    if "exp" in claims and now - JWT_LEEWAY_SECONDS >= claims["exp"]:
        raise jwt.ExpiredSignatureError("expired")
    if "nbf" in claims and now + JWT_LEEWAY_SECONDS < claims["nbf"]:
        raise jwt.ImmatureSignatureError("not yet valid")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[str]) -> str | None:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    right-most ``X-Forwarded-For`` entry that is not a trusted proxy (entries further left were
    written by the client itself and prove nothing)."""
    proxies = [n for n in (network(t) for t in trusted) if n is not None]

    def is_proxy(address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip.version == n.version and ip in n for n in proxies)

    if not is_proxy(peer):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_proxy(hop):
            return hop
    return hops[0] if hops else peer


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    text = address.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.7:5060
        text = text.split(":")[0]
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def check_allowlist(source: SourceConfig, address: str | None) -> None:
    """403 unless the client address is in one of ``ip_allowlist``'s networks."""
    if not source.ip_allowlist:
        return
    ip = _ip(address)
    networks = [n for n in (network(entry) for entry in source.ip_allowlist) if n is not None]
    if ip is None or not any(ip.version == n.version and ip in n for n in networks):
        raise Forbidden("ip_not_allowed", f"address {address or 'unknown'} is not in this source's ip_allowlist")
