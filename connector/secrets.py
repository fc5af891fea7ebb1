"""Secrets from the OS keyring or the environment, never from files or the database.

Keyring: service ``callsync``, users such as ``source:dialer``,
``source:dialer:previous`` and ``crm:ghl``.  Environment (headless servers, CI):
``CALLSYNC_SECRET_<NAME>`` / ``CALLSYNC_SECRET_<NAME>_PREVIOUS`` for sources,
``CALLSYNC_GHL_TOKEN`` for the CRM token, ``NGROK_AUTHTOKEN`` for the tunnel (``tunnel:ngrok``),
``CALLSYNC_TWILIO_TOKEN_<NAME>`` for a Twilio source's API token (``twilio:<name>``).  The environment
wins when both are set.

A source with a signature *and* an auth method (``auth = ...``) keeps the auth credential
apart: ``source:<name>:auth`` (``CALLSYNC_AUTH_<NAME>``, rotation ``source:<name>:auth:previous``
/ ``CALLSYNC_AUTH_<NAME>_PREVIOUS``).  A source with only one of them uses ``source:<name>``;
public-key checks (Telnyx, GoHighLevel, JWT with a public key) need no secret.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time

from typing import TYPE_CHECKING

import keyring
import keyring.errors
from keyring.backends import fail, null

if TYPE_CHECKING:
    from connector.config import SourceConfig

SERVICE = "callsync"
log = logging.getLogger(__name__)

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_lock = threading.Lock()
_warned: set[str] = set()


def source_user(name: str, previous: bool = False) -> str:
    return f"source:{name}:previous" if previous else f"source:{name}"


def auth_user(name: str, previous: bool = False) -> str:
    return f"source:{name}:auth:previous" if previous else f"source:{name}:auth"


def previous_user(user: str) -> str:
    return f"{user}:previous"


def secret_users(source: SourceConfig) -> dict[str, str]:
    """The keyring user holding each credential the source checks: ``{"signature": user,
    "auth": user}``, only for the checks that need a secret."""
    users: dict[str, str] = {}
    if source.signature_needs_secret:
        users["signature"] = source_user(source.name)
    if source.auth_needs_secret:
        both = source.signature_scheme is not None
        users["auth"] = auth_user(source.name) if both else source_user(source.name)
    return users


def env_name(user: str) -> str:
    """The environment variable that holds the secret for keyring ``user``."""
    if user == "crm:ghl":
        return "CALLSYNC_GHL_TOKEN"
    if user == "admin:token":
        return "CALLSYNC_ADMIN_TOKEN"
    if user == "store":  # the PostgreSQL store's password (server mode)
        return "CALLSYNC_STORE_PASSWORD"
    if user == "tunnel:ngrok":  # the ngrok SDK's own variable
        return "NGROK_AUTHTOKEN"
    parts = user.split(":")
    if parts[0] == "twilio" and len(parts) == 2:  # a reconciling Twilio source's API token
        return "CALLSYNC_TWILIO_TOKEN_" + _NON_ALNUM.sub("_", parts[1]).upper()
    if parts[0] == "source" and len(parts) >= 2:
        name = _NON_ALNUM.sub("_", parts[1]).upper()
        role = parts[2:3] == ["auth"]
        rest = parts[3:] if role else parts[2:]
        suffix = "_PREVIOUS" if rest == ["previous"] else ""
        return f"CALLSYNC_{'AUTH' if role else 'SECRET'}_{name}{suffix}"
    return "CALLSYNC_" + _NON_ALNUM.sub("_", user).upper()


def keyring_usable() -> tuple[bool, str]:
    """Whether an OS keyring is available, and a sentence for the user."""
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    try:
        priority = float(backend.priority)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a backend reports "not viable" by raising
        priority = 0.0
    if isinstance(backend, (fail.Keyring, null.Keyring)) or priority < 1:
        return False, (
            f"No usable OS keyring ({name}). Secrets cannot be saved here; set them in the "
            "environment instead, e.g. CALLSYNC_SECRET_<SOURCE> and CALLSYNC_GHL_TOKEN."
        )
    return True, f"Secrets are stored in the OS keyring ({name})."


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def optional(user: str) -> bool:
    """``source:<name>:previous`` is only there while a secret rotates: its absence is normal."""
    return user.endswith(":previous")


def lookup(user: str) -> tuple[str | None, str]:
    """The secret and where it came from: ``"environment"``, ``"keyring"`` or ``"missing"``
    (``"keyring error: ..."`` when an OS keyring exists but refused the lookup)."""
    value = os.environ.get(env_name(user))
    if value:
        return value, "environment"
    try:
        with _lock:
            value = keyring.get_password(SERVICE, user) or None
    except keyring.errors.KeyringError as exc:
        if isinstance(keyring.get_keyring(), (fail.Keyring, null.Keyring)):
            return None, "missing"  # no OS keyring at all: keyring_usable() says so where it matters
        if not optional(user):
            _warn_once(user, f"keyring lookup for {user!r} failed ({exc}); set {env_name(user)} instead")
        return None, f"keyring error: {exc}"
    return value, ("keyring" if value else "missing")


def get_secret(user: str) -> str | None:
    return lookup(user)[0]


def set_secret(user: str, value: str) -> None:
    """Store in the OS keyring; raises ``keyring.errors.KeyringError`` when there is none."""
    with _lock:
        keyring.set_password(SERVICE, user, value)
    _cache.invalidate()


def delete_secret(user: str) -> None:
    try:
        with _lock:
            keyring.delete_password(SERVICE, user)
    except keyring.errors.PasswordDeleteError:
        pass
    _cache.invalidate()


class _SecretCache:
    """Keyring lookups can take milliseconds (D-Bus); the request path reads through this.

    Changes made in this process are seen at once; changes made elsewhere (another process,
    the environment of a restart) within ``ttl`` seconds."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._values: dict[str, tuple[float, list[str]]] = {}
        self._single: dict[str, tuple[float, str | None]] = {}

    def invalidate(self) -> None:
        self._values.clear()
        self._single.clear()

    def secret(self, user: str) -> str | None:
        now = time.monotonic()
        hit = self._single.get(user)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        value = get_secret(user)
        self._single[user] = (now, value)
        return value

    def values(self, user: str) -> list[str]:
        now = time.monotonic()
        hit = self._values.get(user)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        values = [s for s in (get_secret(user), get_secret(previous_user(user))) if s]
        self._values[user] = (now, values)
        return values


_cache = _SecretCache()


def source_secrets(name: str) -> list[str]:
    """Current and previous secret of a source (either verifies), cached briefly."""
    return _cache.values(source_user(name))


def secret_values(user: str) -> list[str]:
    """Current and previous value of any credential (``source:<name>``, ``source:<name>:auth``),
    cached briefly: either verifies."""
    return _cache.values(user)


def cached_secret(user: str) -> str | None:
    """``get_secret`` through the short-lived cache (for per-job lookups such as the CRM token)."""
    return _cache.secret(user)


def invalidate_cache() -> None:
    _cache.invalidate()

