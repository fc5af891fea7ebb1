"""Sources of every kind and auth method in config.toml: what is accepted, what is a
configuration error naming the key, and which keyring user / environment variable holds each
credential."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from connector import secrets
from connector.config import ConfigError, SourceConfig, parse_config, parse_source

GENERIC_FIELDS = {"call_id": "call.ref", "event": "evt.kind"}


def pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


ED_KEY = ed25519.Ed25519PrivateKey.generate().public_key()
RAW_ED_B64 = base64.b64encode(ED_KEY.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
RSA_PEM = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
P256_PEM = pem(ec.generate_private_key(ec.SECP256R1()).public_key())
P384_PEM = pem(ec.generate_private_key(ec.SECP384R1()).public_key())


@pytest.mark.parametrize(
    "table",
    [
        {"kind": "cloudevents", "signature": "standard"},
        {"kind": "cloudevents", "auth": "bearer"},
        {"kind": "telnyx", "public_key": RAW_ED_B64},  # as the Telnyx portal shows it
        {"kind": "telnyx", "public_key": pem(ED_KEY)},
        {"kind": "retell"},
        {"kind": "vapi"},
        {"kind": "vapi", "signature": "hmac", "signature_header": "x-signature"},
        {"kind": "ghl"},  # GoHighLevel's published keys
        {"kind": "ghl", "public_key": "".join(pem(ED_KEY).splitlines()[1:-1])},  # base64 SPKI DER
        {"kind": "ghl", "legacy_public_key": RSA_PEM},
        {"kind": "generic", "signature": "hmac", "fields": GENERIC_FIELDS, "status_map": {"no-answer": "no_answer"}},
        {"kind": "hmac", "auth": "api_key", "api_key_param": "key"},
        {"kind": "standard", "auth": "basic", "basic_user": "dialer"},
        {"kind": "twilio", "auth": "bearer", "jwt": True, "jwt_public_key": RSA_PEM, "jwt_audience": "callsync"},
        {"kind": "generic", "auth": "bearer", "jwt": True, "jwt_public_key": P256_PEM, "fields": GENERIC_FIELDS},
        {"kind": "retell", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]},
    ],
)
def test_every_kind_and_auth_method_parses_and_round_trips(table):
    source = parse_source("s", table)
    assert parse_source("s", source.to_toml()) == source


@pytest.mark.parametrize(
    "table, message",
    [
        ({"kind": "cloudevents"}, "sources.s verifies nothing: kind 'cloudevents' describes the payload only"),
        ({"kind": "generic", "fields": GENERIC_FIELDS}, "sources.s verifies nothing"),
        ({"kind": "generic", "fields": GENERIC_FIELDS, "ip_allowlist": ["10.0.0.0/8"]}, "ip_allowlist alone"),
        ({"kind": "cloudevents", "signature": "twilio"}, "sources.s.signature must be one of hmac, standard"),
        ({"kind": "hmac", "signature": "standard"}, "sources.s.signature applies to kinds cloudevents, generic, vapi"),
        ({"kind": "vapi", "signature": "standard"}, "sources.s.signature must be one of hmac"),
        ({"kind": "telnyx"}, "sources.s.public_key is required"),
        ({"kind": "telnyx", "public_key": "not a key"}, "sources.s.public_key: not a public key"),
        ({"kind": "telnyx", "public_key": RSA_PEM}, "sources.s.public_key: is a rsa key; expected ed25519"),
        ({"kind": "ghl", "legacy_public_key": pem(ED_KEY)}, "sources.s.legacy_public_key: is a ed25519 key; expected rsa"),
        ({"kind": "hmac", "public_key": pem(ED_KEY)}, "sources.s.public_key applies to kind \"telnyx\" or \"ghl\""),
        ({"kind": "retell", "format": "unlimcall"}, "sources.s.format: kind 'retell' reads its own payload"),
        ({"kind": "hmac", "auth": "oauth"}, "sources.s.auth must be one of api_key, basic, bearer"),
        ({"kind": "hmac", "auth": "basic"}, "sources.s.basic_user is required"),
        ({"kind": "hmac", "auth": "basic", "basic_user": "a:b"}, "sources.s.basic_user is required"),
        ({"kind": "hmac", "basic_user": "x"}, "sources.s.basic_user applies to auth = \"basic\" only"),
        ({"kind": "hmac", "api_key_param": "k"}, "api_key_param apply to auth = \"api_key\" only"),
        ({"kind": "hmac", "auth": "api_key", "api_key_header": " "}, "sources.s.api_key_header must not be empty"),
        ({"kind": "hmac", "jwt": True}, "sources.s.jwt applies to auth = \"bearer\" only"),
        ({"kind": "hmac", "auth": "bearer", "jwt_audience": "x"}, "sources.s.jwt_audience applies to jwt = true only"),
        ({"kind": "hmac", "auth": "bearer", "jwt": "yes"}, "sources.s.jwt must be bool"),
        ({"kind": "hmac", "auth": "bearer", "jwt": True, "jwt_public_key": P384_PEM},
         "sources.s.jwt_public_key: is a ec key; expected rsa or p256 or ed25519"),
        ({"kind": "hmac", "ip_allowlist": ["10.0.0.0/33"]}, "sources.s.ip_allowlist: '10.0.0.0/33' is not an IP"),
        ({"kind": "hmac", "ip_allowlist": "10.0.0.0/8"}, "sources.s.ip_allowlist must be list"),
        ({"kind": "generic", "auth": "bearer", "fields": {"call_id": "a"}}, "sources.s.fields.event is required"),
        ({"kind": "generic", "auth": "bearer", "fields": {**GENERIC_FIELDS, "caller": "a.b"}},
         "[sources.s.fields]: unknown key 'caller'"),
        ({"kind": "generic", "auth": "bearer", "fields": {**GENERIC_FIELDS, "from": "a..b"}},
         "sources.s.fields.from: 'a..b' is not a dotted path"),
        ({"kind": "generic", "auth": "bearer", "fields": {**GENERIC_FIELDS, "to": 5}},
         "sources.s.fields.to must be a dotted path"),
        ({"kind": "generic", "auth": "bearer", "fields": GENERIC_FIELDS, "status_map": {"done": "won"}},
         "sources.s.status_map.done: 'won' is not one of connected, sale, no_answer"),
        ({"kind": "hmac", "fields": GENERIC_FIELDS}, "sources.s.fields applies to kind \"generic\" only"),
        ({"kind": "hmac", "api_key": "abc"}, "unknown key 'api_key' (secrets never go in config.toml"),
        ({"kind": "hmac", "api_key_heder": "X"}, "unknown key 'api_key_heder' (did you mean 'api_key_header'?)"),
    ],
)
def test_source_mistakes_are_configuration_errors_naming_the_key(tmp_path, table, message):
    with pytest.raises(ConfigError) as error:
        parse_config({"sources": {"s": table}}, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_trusted_proxies_is_a_server_key(tmp_path):
    config = parse_config({"server": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}}, tmp_path)
    assert config.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    with pytest.raises(ConfigError, match="server.trusted_proxies: 'tunnel' is not an IP address"):
        parse_config({"server": {"trusted_proxies": ["tunnel"]}}, tmp_path)
    with pytest.raises(ConfigError, match=r"\[sources.s\]: unknown key 'trusted_proxies'"):
        parse_config({"sources": {"s": {"trusted_proxies": []}}}, tmp_path)


S = "source:s"
A = "source:s:auth"


@pytest.mark.parametrize(
    "table, users",
    [
        ({"kind": "hmac"}, {"signature": S}),
        ({"kind": "retell"}, {"signature": S}),
        ({"kind": "vapi"}, {"signature": S}),  # X-Vapi-Secret
        ({"kind": "vapi", "auth": "bearer"}, {"auth": S}),  # only an auth method: source:<name>
        ({"kind": "vapi", "signature": "hmac", "auth": "bearer"}, {"signature": S, "auth": A}),
        ({"kind": "generic", "auth": "basic", "basic_user": "u", "fields": GENERIC_FIELDS}, {"auth": S}),
        ({"kind": "cloudevents", "signature": "standard", "auth": "api_key"}, {"signature": S, "auth": A}),
        ({"kind": "telnyx", "public_key": RAW_ED_B64}, {}),  # public keys need no secret
        ({"kind": "ghl"}, {}),
        ({"kind": "ghl", "auth": "api_key"}, {"auth": A}),
        ({"kind": "hmac", "auth": "bearer", "jwt": True}, {"signature": S, "auth": A}),  # HS256 with the secret
        ({"kind": "hmac", "auth": "bearer", "jwt": True, "jwt_public_key": RSA_PEM}, {"signature": S}),
    ],
)
def test_which_keyring_user_holds_each_credential(table, users):
    assert secrets.secret_users(parse_source("s", table)) == users


@pytest.mark.parametrize(
    "user, env",
    [
        ("source:dialer:auth", "CALLSYNC_AUTH_DIALER"),
        ("source:my-dialer.2:auth", "CALLSYNC_AUTH_MY_DIALER_2"),
        ("source:dialer:auth:previous", "CALLSYNC_AUTH_DIALER_PREVIOUS"),
        ("source:dialer", "CALLSYNC_SECRET_DIALER"),
        ("source:dialer:previous", "CALLSYNC_SECRET_DIALER_PREVIOUS"),
    ],
)
def test_auth_credentials_have_their_own_environment_names(user, env):
    assert secrets.env_name(user) == env


def test_auth_credential_rotates_like_a_signing_secret(monkeypatch):
    secrets.set_secret("source:s:auth", "from-keyring")
    assert secrets.secret_values("source:s:auth") == ["from-keyring"]
    monkeypatch.setenv("CALLSYNC_AUTH_S", "new")
    monkeypatch.setenv("CALLSYNC_AUTH_S_PREVIOUS", "old")
    secrets.invalidate_cache()
    assert secrets.secret_values("source:s:auth") == ["new", "old"]
    assert secrets.source_secrets("s") == []  # the signing secret is another user


def test_secret_status_lists_what_each_source_needs(tmp_path):
    from connector.cli_tools import required_secrets

    config = parse_config({"sources": {
        "tx": {"kind": "telnyx", "public_key": RAW_ED_B64},
        "both": {"kind": "cloudevents", "signature": "hmac", "auth": "api_key"},
    }}, tmp_path)
    users = [user for user, _ in required_secrets(config) if user.startswith("source:")]
    assert users == ["source:both", "source:both:previous", "source:both:auth", "source:both:auth:previous"]


def test_payload_format_follows_the_kind():
    assert SourceConfig("s", kind="retell").payload_format == "retell"
    assert SourceConfig("s", kind="hmac", format="dialercx").payload_format == "dialercx"
    assert SourceConfig("s", kind="generic").payload_format == "generic"


def test_the_window_writes_every_kind_back_and_drops_keys_it_turned_off(tmp_path):
    from connector import config_edit
    from connector.config import load_config

    path = tmp_path / "config.toml"
    path.write_text("# my dialers\n[server]\nport = 8787\n")
    generic = parse_source("crm", {"kind": "generic", "auth": "basic", "basic_user": "dialer",
                                   "ip_allowlist": ["203.0.113.0/24"], "fields": GENERIC_FIELDS,
                                   "status_map": {"no-answer": "no_answer"}})
    config_edit.set_source(path, generic)
    assert load_config(tmp_path).sources["crm"] == generic
    plain = parse_source("crm", {"kind": "generic", "signature": "hmac", "fields": GENERIC_FIELDS})
    config_edit.set_source(path, plain)  # auth, basic_user, allowlist and status_map switched off
    assert load_config(tmp_path).sources["crm"] == plain
    assert "# my dialers" in path.read_text()
