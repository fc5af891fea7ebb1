"""config.toml parsing and secret lookup: tables of good and bad input."""

from __future__ import annotations

import keyring
import pytest
from keyring.backends import fail

from connector import secrets
from connector.config import ConfigError, apply_overrides, load_config, parse_config


def test_first_start_writes_a_commented_config(tmp_path):
    config = load_config(tmp_path / "data")
    text = (tmp_path / "data" / "config.toml").read_text()
    assert "[server]" in text and "# [sources.dialer]" in text
    assert config.sources == {} and config.server.port == 8787 and config.server.admin_port == 8788
    assert config.db_path == tmp_path / "data" / "callsync.db"


def test_sources_parse_with_defaults(tmp_path):
    config = parse_config({"sources": {"dialer": {}, "tw": {"kind": "twilio"},
                                       "std": {"kind": "standard", "tolerance_seconds": 60}}}, tmp_path)
    d = config.sources["dialer"]
    assert (d.kind, d.signature_header, d.signature_encoding, d.timestamp_header, d.tolerance_seconds) == (
        "hmac", "X-Webhook-Signature", "hex", "", 300)
    assert config.sources["std"].tolerance_seconds == 60


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sources": {"d": {"kind": "jwt"}}}, "sources.d.kind must be one of hmac, standard, twilio"),
        ({"sources": {"d": {"signature_encoding": "b64"}}}, "signature_encoding must be one of"),
        ({"sources": {"bad name": {}}}, "a source name uses letters"),
        ({"sources": {"d": {"tolerance_seconds": "5"}}}, "tolerance_seconds must be int"),
        ({"sources": {"d": {"tolerance_seconds": 0}}}, "must be positive"),
        ({"sources": {"d": {"signature_header": " "}}}, "must not be empty"),
        ({"sources": ["d"]}, "table of tables"),
        ({"server": {"port": 70000}}, "server.port must be a TCP port"),
        ({"server": {"port": True}}, "server.port must be int"),
        ({"server": {"max_body_bytes": 10}}, "at least 1024"),
    ],
)
def test_config_errors_say_which_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)


def test_broken_toml_is_a_config_error(tmp_path):
    (tmp_path / "config.toml").write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_command_line_overrides_win(tmp_path):
    config = apply_overrides(parse_config({"server": {"port": 1}}, tmp_path), port=9000, host=None)
    assert config.server.port == 9000 and config.server.host == "127.0.0.1"


@pytest.mark.parametrize(
    "user, env",
    [
        ("source:dialer", "CALLSYNC_SECRET_DIALER"),
        ("source:my-dialer.2", "CALLSYNC_SECRET_MY_DIALER_2"),
        ("source:dialer:previous", "CALLSYNC_SECRET_DIALER_PREVIOUS"),
        ("crm:ghl", "CALLSYNC_GHL_TOKEN"),
        ("admin:token", "CALLSYNC_ADMIN_TOKEN"),
    ],
)
def test_environment_names(user, env):
    assert secrets.env_name(user) == env


def test_environment_wins_over_keyring_and_previous_is_used(monkeypatch):
    secrets.set_secret("source:dialer", "from-keyring")
    assert secrets.source_secrets("dialer") == ["from-keyring"]
    monkeypatch.setenv("CALLSYNC_SECRET_DIALER", "from-env")
    monkeypatch.setenv("CALLSYNC_SECRET_DIALER_PREVIOUS", "old")
    secrets.invalidate_cache()
    assert secrets.source_secrets("dialer") == ["from-env", "old"]


def test_no_keyring_is_reported_and_never_falls_back_to_files(monkeypatch):
    keyring.set_keyring(fail.Keyring())
    usable, message = secrets.keyring_usable()
    assert not usable and "CALLSYNC_SECRET_" in message
    assert secrets.get_secret("source:dialer") is None  # lookup failure is not a crash
    with pytest.raises(keyring.errors.KeyringError):
        secrets.set_secret("source:dialer", "x")


def test_memory_keyring_is_never_chosen_by_keyring_itself():
    from keyring.backend import get_all_keyring
    from keyring.core import _detect_backend  # what keyring does at import without a configured backend

    from tests.memory_keyring import MemoryKeyring

    assert not any(isinstance(k, MemoryKeyring) for k in get_all_keyring())
    assert not isinstance(_detect_backend(), MemoryKeyring)
