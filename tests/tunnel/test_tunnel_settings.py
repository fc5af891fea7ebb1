"""``[tunnel]`` in config.toml, table-driven; the secrets' environment names; the URL-change sentence."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, parse_config
from connector.secrets import env_name
from connector.tunnel import TunnelSettings, change_notice


@pytest.mark.parametrize("table,expected", [
    ({}, TunnelSettings()),
    ({"provider": "ngrok"}, TunnelSettings("ngrok", True, "", "")),
    ({"provider": "ngrok", "enabled": False, "domain": "calls.ngrok-free.app"},
     TunnelSettings("ngrok", False, "calls.ngrok-free.app", "")),
    ({"provider": "cloudflared"}, TunnelSettings("cloudflared")),
    ({"provider": "cloudflared", "tunnel_name": "callsync", "domain": "hooks.example.com"},
     TunnelSettings("cloudflared", True, "hooks.example.com", "callsync")),
])
def test_tunnel_table(tmp_path, table, expected):
    config = parse_config({"tunnel": table} if table else {}, tmp_path)
    assert config.tunnel == expected
    assert config.tunnel.active == (bool(table.get("provider")) and table.get("enabled", True))


@pytest.mark.parametrize("table,message", [
    ({"provider": "localtunnel"}, "tunnel.provider must be one of ngrok, cloudflared; got 'localtunnel'"),
    ({"enabled": True}, "tunnel.provider is required: one of ngrok, cloudflared"),
    ({"provider": "ngrok", "enabled": "yes"}, "tunnel.enabled must be bool, got 'yes'"),
    ({"provider": "ngrok", "domian": "x"}, "[tunnel]: unknown key 'domian' (did you mean 'domain'?)"),
    ({"provider": "ngrok", "authtoken": "x"}, "secrets never go in config.toml"),
    ({"provider": "ngrok", "domain": "https://calls.ngrok-free.app"}, "tunnel.domain must be a host name"),
    ({"provider": "ngrok", "tunnel_name": "x"}, "tunnel.tunnel_name applies to provider = \"cloudflared\" only"),
    ({"provider": "cloudflared", "tunnel_name": "callsync"}, "tunnel.domain is required with tunnel_name"),
    ({"provider": "cloudflared", "domain": "hooks.example.com"}, "needs tunnel_name"),
])
def test_tunnel_table_mistakes_name_the_key(tmp_path, table, message):
    with pytest.raises(ConfigError) as caught:
        parse_config({"tunnel": table}, tmp_path)
    assert message in str(caught.value)


@pytest.mark.parametrize("user,variable", [
    ("tunnel:ngrok", "NGROK_AUTHTOKEN"),
    ("twilio:twilio", "CALLSYNC_TWILIO_TOKEN_TWILIO"),
    ("twilio:main-line", "CALLSYNC_TWILIO_TOKEN_MAIN_LINE"),
    ("source:twilio", "CALLSYNC_SECRET_TWILIO"),
])
def test_environment_names(user, variable):
    assert env_name(user) == variable


@pytest.mark.parametrize("previous,url,sources,expected", [
    (None, "https://a.ngrok-free.app", ["dialer"], None),
    ("https://a.ngrok-free.app", "https://a.ngrok-free.app", ["dialer"], None),
    ("https://a.ngrok-free.app", "https://b.ngrok-free.app", ["dialer"],
     "The public URL changed from https://a.ngrok-free.app to https://b.ngrok-free.app: update the webhook URL in "
     "your dialer to https://b.ngrok-free.app/hooks/dialer."),
    ("https://a", "https://b", [], "The public URL changed from https://a to https://b: update the webhook URL in "
                                   "your dialer to https://b/hooks/<source>."),
])
def test_change_notice(previous, url, sources, expected):
    assert change_notice(previous, url, sources) == expected


def test_doctor_counts_the_tunnel_as_the_public_url(tmp_path):
    from connector.doctor import check_public_url

    item = check_public_url(parse_config({"tunnel": {"provider": "ngrok"}}, tmp_path))
    assert item.ok and not item.note and "from the ngrok tunnel" in item.detail
    item = check_public_url(parse_config({}, tmp_path))
    assert item.note and "callsync serve --tunnel" in item.fix
