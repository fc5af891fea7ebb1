"""The checks of a ``[sources.<name>]`` table beyond types: which keys its kind and auth method
need, public keys that load, a generic mapping that compiles.  A mistake is a ConfigError naming
the key, raised at start-up - never a source that silently verifies nothing."""

from __future__ import annotations

from connector.config import AUTH_METHODS, PAYLOAD_KINDS, SIGNATURES, ConfigError, SourceConfig, check_keys, network
from connector.reconcile.settings import check_reconcile


def check_source(src: SourceConfig, where: str) -> None:
    _check_signature(src, where)
    _check_auth(src, where)
    for entry in src.ip_allowlist:
        if not isinstance(entry, str) or not network(entry):
            raise ConfigError(f"{where}.ip_allowlist: {entry!r} is not an IP address or network (e.g. 203.0.113.0/24)")
    _check_keys(src, where)
    _check_mapping(src, where)
    check_reconcile(src, where)
    if src.signature_scheme is None and not src.auth:
        methods = " or ".join(f'"{s}"' for s in SIGNATURES[src.kind])
        raise ConfigError(
            f"{where} verifies nothing: kind {src.kind!r} describes the payload only; set signature = {methods} "
            f"and/or auth = \"api_key\" | \"basic\" | \"bearer\" (ip_allowlist alone is not enough)"
        )


def _check_signature(src: SourceConfig, where: str) -> None:
    if src.kind in PAYLOAD_KINDS and src.format != "auto":
        raise ConfigError(f"{where}.format: kind {src.kind!r} reads its own payload; remove format")
    if src.signature:
        allowed = SIGNATURES.get(src.kind)
        if allowed is None:
            raise ConfigError(f"{where}.signature applies to kinds {', '.join(SIGNATURES)}; "
                              f"kind {src.kind!r} has its own signature check")
        if src.signature not in allowed:
            raise ConfigError(f"{where}.signature must be one of {', '.join(allowed)}; got {src.signature!r}")


def _check_auth(src: SourceConfig, where: str) -> None:
    if src.auth and src.auth not in AUTH_METHODS:
        raise ConfigError(f"{where}.auth must be one of {', '.join(AUTH_METHODS)}; got {src.auth!r}")
    if src.auth == "api_key" and not src.api_key_header.strip() and not src.api_key_param.strip():
        raise ConfigError(f"{where}.api_key_header must not be empty (or set api_key_param)")
    if src.auth == "basic" and (not src.basic_user or ":" in src.basic_user):
        raise ConfigError(f"{where}.basic_user is required for auth = \"basic\" (a user name without ':'); "
                          "the password is the source's secret")
    if src.basic_user and src.auth != "basic":
        raise ConfigError(f"{where}.basic_user applies to auth = \"basic\" only")
    if (src.api_key_param or src.api_key_header != "X-API-Key") and src.auth != "api_key":
        raise ConfigError(f"{where}.api_key_header / api_key_param apply to auth = \"api_key\" only")
    if src.jwt and src.auth != "bearer":
        raise ConfigError(f"{where}.jwt applies to auth = \"bearer\" only")
    for key in ("jwt_public_key", "jwt_audience", "jwt_issuer"):
        if getattr(src, key) and not src.jwt:
            raise ConfigError(f"{where}.{key} applies to jwt = true only")
    if src.jwt_public_key:
        _key(src.jwt_public_key, f"{where}.jwt_public_key", "rsa", "p256", "ed25519")


def _check_keys(src: SourceConfig, where: str) -> None:
    if src.kind == "telnyx":
        if not src.public_key:
            raise ConfigError(f"{where}.public_key is required: the Telnyx account's public key "
                              "(Mission Control Portal, base64) - it is not a secret")
        _key(src.public_key, f"{where}.public_key", "ed25519")
    elif src.kind == "ghl":
        if src.public_key:
            _key(src.public_key, f"{where}.public_key", "ed25519")
        if src.legacy_public_key:
            _key(src.legacy_public_key, f"{where}.legacy_public_key", "rsa")
    else:
        for key in ("public_key", "legacy_public_key"):
            if getattr(src, key):
                raise ConfigError(f"{where}.{key} applies to kind \"telnyx\" or \"ghl\" only")
    if src.legacy_public_key and src.kind != "ghl":
        raise ConfigError(f"{where}.legacy_public_key applies to kind \"ghl\" only")


def _key(text: str, where: str, *kinds: str) -> None:
    from connector.receiver.keys import typed_key

    try:
        typed_key(text, *kinds)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_mapping(src: SourceConfig, where: str) -> None:
    from connector.formats.generic import FIELD_KEYS, compile_mapping

    if src.kind != "generic":
        for key in ("fields", "status_map"):
            if getattr(src, key):
                raise ConfigError(f"{where}.{key} applies to kind \"generic\" only")
        return
    check_keys(src.fields, FIELD_KEYS, f"[{where}.fields]")
    try:
        compile_mapping(src.fields, src.status_map)
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None
