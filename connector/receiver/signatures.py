"""Signature checks for each source kind, on the raw request bytes.

Every function returns ``None`` when the request is authentic for one of the
source's secrets (current or previous) and raises :class:`Unauthorized`
otherwise.  Nothing here parses JSON: verification comes before parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from standardwebhooks import Webhook

from connector.config import SourceConfig


class Unauthorized(Exception):
    """Rejected with 401; ``reason`` is the counter name, ``message`` goes into the response."""

    status = 401

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Forbidden(Unauthorized):
    """Rejected with 403: authentic or not, the request comes from an address the source refuses."""

    status = 403


def _check_timestamp(raw: str | None, tolerance: int, now: float, header: str) -> int:
    """The signed unix time in seconds; the header may carry seconds or milliseconds."""
    if not raw:
        raise Unauthorized("missing_signature", f"missing {header} header")
    try:
        ts = int(raw.strip())
    except ValueError:
        raise Unauthorized("bad_signature", f"{header} is not a unix timestamp") from None
    if ts > 10**11:  # milliseconds
        ts //= 1000
    if abs(now - ts) > tolerance:
        raise Unauthorized("stale_timestamp", f"{header} is outside the {tolerance}s window")
    return ts


def verify_hmac(
    source: SourceConfig, secrets: Sequence[str], body: bytes, headers: Mapping[str, str], now: float
) -> None:
    """HMAC-SHA256 of the body (or of ``"<timestamp>.<body>"``) in a configurable header."""
    given = (headers.get(source.signature_header) or "").strip()
    if not given:
        raise Unauthorized("missing_signature", f"missing {source.signature_header} header")
    if given[:7].lower() == "sha256=":
        given = given[7:]
    content = body
    if source.timestamp_header:
        raw = headers.get(source.timestamp_header)
        _check_timestamp(raw, source.tolerance_seconds, now, source.timestamp_header)
        # The sender signed the timestamp as it sent it: seconds, or milliseconds.
        content = f"{(raw or '').strip()}.".encode() + body
    try:
        if source.signature_encoding == "hex":
            given_bytes = bytes.fromhex(given)
        else:
            given_bytes = base64.b64decode(given, validate=True)
    except (ValueError, binascii.Error):
        raise Unauthorized("bad_signature", f"{source.signature_header} is not {source.signature_encoding}") from None
    for secret in secrets:
        expected = hmac.new(secret.encode(), content, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given_bytes):
            return
    raise Unauthorized("bad_signature", "signature does not match")


def verify_standard(
    source: SourceConfig, secrets: Sequence[str], body: bytes, headers: Mapping[str, str], now: float
) -> None:
    """Standard Webhooks (also Svix's ``svix-*`` header names): ``v1,<base64>`` entries."""
    msg_id = headers.get("webhook-id") or headers.get("svix-id")
    raw_ts = headers.get("webhook-timestamp") or headers.get("svix-timestamp")
    signatures = headers.get("webhook-signature") or headers.get("svix-signature")
    if not msg_id or not signatures:
        raise Unauthorized("missing_signature", "missing webhook-id / webhook-signature headers")
    if "." in msg_id:
        raise Unauthorized("bad_signature", "webhook-id must not contain '.'")
    ts = _check_timestamp(raw_ts, source.tolerance_seconds, now, "webhook-timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unauthorized("bad_signature", "body is not UTF-8, cannot match a signature") from None
    given = {entry.partition(",")[2] for entry in signatures.split() if entry.startswith("v1,")}
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    for secret in secrets:
        try:
            expected = Webhook(secret).sign(msg_id, when, text).partition(",")[2]
        except Exception:  # noqa: BLE001 - a malformed stored secret must not become a 5xx
            continue
        if any(hmac.compare_digest(expected, g) for g in given):
            return
    raise Unauthorized("bad_signature", "no webhook-signature entry matches")


def _twilio_urls(url: str) -> list[str]:
    """Twilio signs the URL with or without the default port; accept both forms."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None:
        with_port = parts._replace(netloc=f"{host}:{default}") if default else parts
        return [url, urlunsplit(with_port)]
    if parts.port == default:
        return [url, urlunsplit(parts._replace(netloc=host))]
    return [url]


def twilio_signature(token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    data = url + "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def verify_twilio(
    source: SourceConfig,
    secrets: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    is_form: bool,
) -> None:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 over the public URL and the sorted form params."""
    given = headers.get("X-Twilio-Signature")
    if not given:
        raise Unauthorized("missing_signature", "missing X-Twilio-Signature header")
    if not url:
        raise Unauthorized("no_public_url", "set [server] public_url to the URL Twilio calls")
    params: dict[str, list[str]] = {}
    if is_form:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise Unauthorized("bad_signature", "form body is not UTF-8") from None
        for name, value in pairs:
            params.setdefault(name, []).append(value)
    else:
        query = dict(parse_qsl(urlsplit(url).query))
        if query.get("bodySHA256") != hashlib.sha256(body).hexdigest():
            raise Unauthorized("bad_signature", "bodySHA256 does not match the body")
    for secret in secrets:
        for candidate in _twilio_urls(url):
            if hmac.compare_digest(twilio_signature(secret, candidate, params), given):
                return
    raise Unauthorized("bad_signature", "X-Twilio-Signature does not match")


RETELL_HEADER = "x-retell-signature"
RETELL_SIGNATURE = re.compile(r"v=(\d{1,20}),d=([0-9a-fA-F]{1,256})")


def retell_signature(api_key: str, body: bytes, ms: int) -> str:
    """``v=<ms>,d=<hex HMAC-SHA256(api key, body + "<ms>")>`` as Retell sends it."""
    digest = hmac.new(api_key.encode(), body + str(ms).encode(), hashlib.sha256).hexdigest()
    return f"v={ms},d={digest}"


def verify_retell(
    source: SourceConfig, secrets: Sequence[str], body: bytes, headers: Mapping[str, str], now: float
) -> None:
    """Retell AI: ``x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256>`` over the raw body
    followed by the timestamp, keyed with the Retell API key; the timestamp within tolerance."""
    given = (headers.get(RETELL_HEADER) or "").strip()
    if not given:
        raise Unauthorized("missing_signature", f"missing {RETELL_HEADER} header")
    match = RETELL_SIGNATURE.fullmatch(given)
    if not match:
        raise Unauthorized("bad_signature", f"{RETELL_HEADER} is not v=<ms>,d=<hex>")
    ms = int(match.group(1))
    if abs(now - ms / 1000) > source.tolerance_seconds:
        raise Unauthorized("stale_timestamp", f"{RETELL_HEADER} time is outside the {source.tolerance_seconds}s window")
    digest = match.group(2).lower().encode()
    matched = False
    for secret in secrets:
        expected = retell_signature(secret, body, ms).partition(",d=")[2].encode()
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise Unauthorized("bad_signature", "x-retell-signature does not match")


VAPI_SECRET_HEADER = "X-Vapi-Secret"


def verify_vapi_secret(secrets: Sequence[str], headers: Mapping[str, str]) -> None:
    """Vapi's server secret, sent as is in ``X-Vapi-Secret`` (compared in constant time)."""
    given = headers.get(VAPI_SECRET_HEADER)
    if not given:
        raise Unauthorized("missing_signature", f"missing {VAPI_SECRET_HEADER} header")
    matched = False
    for secret in secrets:
        try:
            matched |= hmac.compare_digest(given.strip().encode(), secret.encode())
        except UnicodeEncodeError:
            continue
    if not matched:
        raise Unauthorized("bad_signature", f"{VAPI_SECRET_HEADER} does not match")
