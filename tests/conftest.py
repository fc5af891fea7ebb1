"""Shared fixtures: an in-memory keyring (never the developer's), temp data dirs, a running service."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring  # noqa: E402
import pytest  # noqa: E402

from connector import secrets  # noqa: E402
from tests.memory_keyring import MemoryKeyring  # noqa: E402
from connector.config import parse_config  # noqa: E402

pytest_plugins = ["tests.fakes.ghl_fixture", "tests.pg", "tests.backends"]


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("CALLSYNC_"):
            monkeypatch.delenv(name)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    secrets.invalidate_cache()
    yield backend
    keyring.set_keyring(previous)
    secrets.invalidate_cache()


SECRET = "s3cr3t-dialer"
STANDARD_SECRET = "whsec_" + "a2V5LWZvci1zdGFuZGFyZC13ZWJob29rcy10ZXN0cw=="  # base64 of a 32-byte key
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"


def make_config(tmp_path, *, sources: dict | None = None, server: dict | None = None, extra: dict | None = None):
    data = {
        "server": {"host": "127.0.0.1", "port": 0, "admin_port": 0} | (server or {}),
        "sources": sources
        if sources is not None
        else {
            "dialer": {"kind": "hmac"},
            "dialer_ts": {"kind": "hmac", "timestamp_header": "X-Webhook-Timestamp", "signature_encoding": "base64"},
            "std": {"kind": "standard"},
            "twilio": {"kind": "twilio"},
        },
    } | (extra or {})
    from tests import backends

    if backends.CURRENT.url and "store" not in data:  # the test runs on PostgreSQL (tests/backends.py)
        data["store"] = {"url": backends.CURRENT.url}
    return parse_config(data, tmp_path)


@pytest.fixture
def source_secrets(memory_keyring):
    """Default secrets for the sources of make_config(), in the (memory) keyring."""
    for user, value in {
        "source:dialer": SECRET,
        "source:dialer_ts": SECRET,
        "source:std": STANDARD_SECRET,
        "source:twilio": TWILIO_TOKEN,
    }.items():
        secrets.set_secret(user, value)
    return memory_keyring


@pytest.fixture
async def service(tmp_path, source_secrets):
    """A running Service on loopback with random ports and the default test sources."""
    from connector.app import Service

    config = make_config(tmp_path)
    svc = Service(config)
    await svc.start()
    # Twilio signs the public URL: point it at our loopback listener.
    config.server.public_url = f"http://127.0.0.1:{svc.hooks_port}"
    yield svc
    await svc.stop()
