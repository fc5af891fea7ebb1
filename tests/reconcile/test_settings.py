"""Reconciliation settings in a source's table, table-driven."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, parse_config

SID = "AC" + "a" * 32


def source(**table) -> dict:
    return {"sources": {"twilio": {"kind": "twilio"} | table}}


def test_defaults_and_written_back_only_when_set(tmp_path):
    src = parse_config(source(reconcile=True, account_sid=SID), tmp_path).sources["twilio"]
    assert (src.reconcile, src.account_sid, src.reconcile_minutes, src.reconcile_lookback_hours, src.api_url,
            src.api_key_sid, src.incomplete_minutes) == (True, SID, 15, 24, "https://api.twilio.com", "", 10)
    assert src.to_toml() == {"kind": "twilio", "tolerance_seconds": 300, "reconcile": True, "account_sid": SID}


@pytest.mark.parametrize("table,message", [
    ({"reconcile": True}, "sources.twilio.account_sid is required with reconcile = true"),
    ({"reconcile": True, "account_sid": "AC123"}, "account_sid must be a Twilio account SID"),
    ({"reconcile": True, "account_sid": SID, "api_key_sid": "AK1"}, "api_key_sid must be a Twilio API key SID"),
    ({"reconcile": True, "account_sid": SID, "reconcile_minutes": 0}, "reconcile_minutes must be 1-1440"),
    ({"reconcile": True, "account_sid": SID, "reconcile_lookback_hours": 1000}, "reconcile_lookback_hours must be"),
    ({"reconcile": True, "account_sid": SID, "api_url": "api.twilio.com"}, "api_url must be an http(s) URL"),
    ({"reconcile": "yes"}, "sources.twilio.reconcile must be bool"),
    ({"reconcile_minutes": "15"}, "sources.twilio.reconcile_minutes must be int"),
    ({"incomplete_minutes": 0}, "incomplete_minutes must be at least 1"),
    ({"reconcil": True}, "unknown key 'reconcil' (did you mean 'reconcile'?)"),
    ({"auth_token": "x"}, "secrets never go in config.toml"),
])
def test_mistakes_name_the_key(tmp_path, table, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(source(**table), tmp_path)
    assert message in str(caught.value)


def test_other_kinds_cannot_reconcile(tmp_path):
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": {"dialer": {"kind": "hmac", "reconcile": True}}}, tmp_path)
    assert "reconciliation works with Twilio sources only" in str(caught.value)
    assert parse_config({"sources": {"dialer": {"kind": "hmac", "incomplete_minutes": 5}}},
                        tmp_path).sources["dialer"].incomplete_minutes == 5


def test_secret_status_lists_the_twilio_api_token_and_the_ngrok_authtoken(tmp_path):
    from connector.cli_tools import required_secrets

    config = parse_config(source(reconcile=True, account_sid=SID) | {"tunnel": {"provider": "ngrok"}}, tmp_path)
    users = dict(required_secrets(config))
    assert users["twilio:twilio"] is False and users["tunnel:ngrok"] is True
    config = parse_config(source() | {"tunnel": {"provider": "ngrok", "enabled": False}}, tmp_path)
    assert "twilio:twilio" not in dict(required_secrets(config)) and "tunnel:ngrok" not in dict(required_secrets(config))
