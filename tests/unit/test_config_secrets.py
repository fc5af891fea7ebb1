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


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sources": {"dialer": {"tolerance_secs": 60}}},
         "[sources.dialer]: unknown key 'tolerance_secs' (did you mean 'tolerance_seconds'?)"),
        ({"sources": {"dialer": {"signature_hedaer": "X"}}},
         "[sources.dialer]: unknown key 'signature_hedaer' (did you mean 'signature_header'?)"),
        ({"sources": {"dialer": {"secret": "abc"}}}, "[sources.dialer]: unknown key 'secret' (secrets never go in"),
        ({"server": {"admin-port": 1}}, "[server]: unknown key 'admin-port' (did you mean 'admin_port'?)"),
        ({"server": {"zzz": 1}}, "[server]: unknown key 'zzz' (allowed: "),
        ({"crm": {"ghl": {"locaton_id": "x"}}}, "[crm.ghl]: unknown key 'locaton_id' (did you mean 'location_id'?)"),
        ({"crm": {"hubspot": {}}}, "[crm]: unknown key 'hubspot' (allowed: ghl)"),
        ({"rule": [{}]}, "top level: unknown key 'rule' (did you mean 'rules'?)"),
        ({"rules": [{"outcome": "sale"}, {"outcomes": ["busy"]}]},
         "[[rules]] #2: unknown key 'outcomes' (did you mean 'outcome'?)"),
        ({"rules": [{"task_due_hours": "2h"}]}, "[[rules]] #1: task_due_hours must be a number, got '2h'"),
        ({"rules": [{"task_due_hours": 0}]}, "[[rules]] #1: task_due_hours must be more than 0"),
        ({"rules": [{"note": "no"}]}, "[[rules]] #1: note must be true or false, got 'no'"),
        ({"rules": [{"callback": 1}]}, "[[rules]] #1: callback must be a string, got 1"),
        ({"rules": [{"task": ["a"]}]}, "[[rules]] #1: task must be a string"),
        ({"crm": {"ghl": {"rate_limit": "lots"}}}, "crm.ghl.rate_limit: invalid rate 'lots'"),
        ({"crm": {"ghl": {"base_url": "services.leadconnectorhq.com"}}}, "crm.ghl.base_url must be an http(s) URL"),
        ({"crm": {"ghl": {"timeout_seconds": 0}}}, "crm.ghl.timeout_seconds must be positive"),
        ({"crm": "ghl"}, "crm must be a table"),
    ],
)
def test_every_table_refuses_unknown_keys_and_bad_values(tmp_path, data, message):
    with pytest.raises(ConfigError) as error:
        parse_config(data, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_known_key_is_accepted(tmp_path):
    """The key checks know every field (including ones added later): a full file parses."""
    from connector.config import ServerConfig, SourceConfig
    from connector.sync.settings import NOT_KEYS, GhlSettings, Rule

    server = {k: getattr(ServerConfig(), k) for k in ServerConfig.__dataclass_fields__}
    source = {k: getattr(SourceConfig("d"), k) for k in SourceConfig.__dataclass_fields__ if k != "name"}
    ghl = {k: getattr(GhlSettings(), k) for k in GhlSettings.__dataclass_fields__ if k not in NOT_KEYS}
    rule = {k: getattr(Rule(outcome=["sale"]), k) for k in Rule.__dataclass_fields__}
    config = parse_config({"server": server, "sources": {"d": source}, "crm": {"ghl": ghl}, "rules": [rule]},
                          tmp_path)
    assert config.ghl.rules == [Rule(outcome=["sale"])] and config.sources["d"] == SourceConfig("d")


def test_tools_load_the_config_without_creating_it(tmp_path):
    config = load_config(tmp_path / "none", create=False)
    assert config.sources == {} and not config.ghl.configured and not (tmp_path / "none").exists()


def test_where_each_secret_was_found(monkeypatch):
    secrets.set_secret("source:kr", "k")
    monkeypatch.setenv("CALLSYNC_SECRET_ENV", "e")
    assert secrets.lookup("source:kr") == ("k", "keyring")
    assert secrets.lookup("source:env") == ("e", "environment")
    assert secrets.lookup("source:none") == (None, "missing")
    keyring.set_keyring(fail.Keyring())
    assert secrets.lookup("source:kr") == (None, "missing")


class _BrokenKeyring(keyring.backend.KeyringBackend):
    """An OS keyring that exists but refuses lookups (e.g. a locked Secret Service)."""

    priority = 1  # type: ignore[assignment]
    viable = False  # type: ignore[assignment]

    def get_password(self, service, username):
        raise keyring.errors.KeyringLocked("locked")

    def set_password(self, service, username, password):
        raise keyring.errors.KeyringLocked("locked")

    def delete_password(self, service, username):
        raise keyring.errors.KeyringLocked("locked")


@pytest.mark.parametrize("backend", [fail.Keyring, _BrokenKeyring])
def test_an_absent_previous_secret_is_never_warned_about(monkeypatch, caplog, backend):
    """What the receiver looks up for a source: its secret and the optional :previous one."""
    keyring.set_keyring(backend())
    secrets._warned.clear()
    monkeypatch.setenv("CALLSYNC_SECRET_DIALER", "current")
    with caplog.at_level("WARNING"):
        assert secrets.source_secrets("dialer") == ["current"]
    assert [r.getMessage() for r in caplog.records if "previous" in r.getMessage()] == []
    if backend is _BrokenKeyring:  # a required secret's failing lookup is still reported, once
        secrets.get_secret("crm:ghl")
        secrets.get_secret("crm:ghl")
        assert [r.getMessage() for r in caplog.records].count(
            "keyring lookup for 'crm:ghl' failed (locked); set CALLSYNC_GHL_TOKEN instead") == 1
