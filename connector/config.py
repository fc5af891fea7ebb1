"""``DATA_DIR/config.toml`` <-> typed settings.

The file holds no secrets: those live in the OS keyring or the environment
(``connector.secrets``).  Loading never guesses: a bad value raises
:class:`ConfigError` with the key and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from connector.startup import StartupError

if TYPE_CHECKING:
    from connector.automations.settings import AutomationSettings
    from connector.store.db import StoreTarget
    from connector.sync.settings import GhlSettings
    from connector.tunnel.settings import TunnelSettings

APP_NAME = "callsync"
CONFIG_NAME = "config.toml"
DB_NAME = "callsync.db"

SOURCE_KINDS = ("hmac", "standard", "twilio", "cloudevents", "telnyx", "retell", "vapi", "ghl", "generic")
SIGNATURE_ENCODINGS = ("hex", "base64")
FORMATS = ("auto", "unlimcall", "dialercx", "twilio", "standard")
# Kinds that name their sender's payload: the kind is the format (``format`` stays "auto").
PAYLOAD_KINDS = ("cloudevents", "telnyx", "retell", "vapi", "ghl", "generic")
# Kinds that describe a payload only and verify with ``signature`` and/or ``auth``.
SIGNATURES = {"cloudevents": ("hmac", "standard"), "generic": ("hmac", "standard"), "vapi": ("hmac",)}
AUTH_METHODS = ("api_key", "basic", "bearer")
_SECRET_KEY = re.compile(r"secret|token|passw|api_?key", re.I)
SOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

DEFAULT_CONFIG = """\
# callsync configuration. Secrets never go here: use the OS keyring
# (`callsync secret set source:<name>`) or CALLSYNC_SECRET_<NAME> in the environment.

[server]
host = "127.0.0.1"      # hooks listener; expose it through a tunnel, not by binding 0.0.0.0
port = 8787
admin_port = 8788       # loopback only: health, metrics, events API
public_url = ""         # the URL senders call; "" = the tunnel's (Twilio signs it)
max_body_bytes = 262144

[retention]
raw_payload_days = 30   # raw bodies and headers of older events are dropped (the events stay); 0 keeps them

# A public HTTPS URL for the hooks listener (the admin port is never forwarded); the window's
# switch and `callsync serve --tunnel` turn it on.
# [tunnel]
# provider = "ngrok"      # ngrok (authtoken: `callsync secret set tunnel:ngrok` or NGROK_AUTHTOKEN) | cloudflared
# domain = ""             # ngrok: your free static domain, e.g. name.ngrok-free.app

# One table per sender; each is the endpoint POST /hooks/<name>.
# [sources.dialer]
# kind = "hmac"                              # hmac | standard | twilio
# signature_header = "X-Webhook-Signature"
# signature_encoding = "hex"                 # hex | base64
# timestamp_header = ""                      # if set, signed content is "<timestamp>.<body>"
# tolerance_seconds = 300
# More kinds (cloudevents, telnyx, retell, vapi, ghl, generic), auth methods (auth = "api_key" |
# "basic" | "bearer"), ip_allowlist and a generic field mapping: see the README.

# Call-floor automations (DID burn, abandon rate, caller-ID country, carrier failures, agent pauses) run
# with their defaults; tune one, switch it off (enabled = false), add actions and alert sinks: see the README.
# [automations.abandon]
# notify_at = 2.5                            # % abandoned / (connected + abandoned): an alert
# act_at = 3.0                               # ... and the action
# on_act = "lower_pacing"
# [actions.lower_pacing]
# url = "https://dialer.example.com/api/campaigns/{campaign}/pacing"
# json = { ratio = 1.2 }
# [alerts]
# notify = ["slack://T000/B000/XXXX"]        # Apprise URLs
"""


class ConfigError(ValueError):
    """The configuration file cannot be used; the message (one line) says which key and why."""


def check_keys(table: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Refuse keys the table cannot hold, suggesting the closest known one (typos are silent otherwise)."""
    allowed = sorted(known)
    for key in table:
        if key in allowed:
            continue
        text = str(key)
        # A near-spelling first (tolerance_secs), then a part of a key (tags -> add_tags), then a looser spelling.
        near = difflib.get_close_matches(text, allowed, n=1, cutoff=0.8)
        close = near or [k for k in allowed if len(text) >= 3 and (text in k or k in text)][:2]
        close = close or difflib.get_close_matches(text, allowed, n=1, cutoff=0.6)
        hint = ("did you mean " + " or ".join(map(repr, close)) + "?") if close else "allowed: " + ", ".join(allowed)
        if _SECRET_KEY.search(text) and not near:
            hint = "secrets never go in config.toml: use `callsync secret set ...` or the environment"
        raise ConfigError(f"{where}: unknown key {key!r} ({hint})")


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(slots=True)
class SourceConfig:
    name: str
    kind: str = "hmac"
    signature_header: str = "X-Webhook-Signature"
    signature_encoding: str = "hex"
    timestamp_header: str = ""
    tolerance_seconds: int = 300
    format: str = "auto"
    signature: str = ""  # cloudevents | generic | vapi: "hmac" or "standard" (the keys of those kinds)
    auth: str = ""  # api_key | basic | bearer, on top of any kind
    api_key_header: str = "X-API-Key"
    api_key_param: str = ""  # the key may come as this query parameter instead
    basic_user: str = ""
    jwt: bool = False  # auth = "bearer": the token is a JWT (HS256 with the secret, or jwt_public_key)
    jwt_public_key: str = ""  # PEM: RS256 / ES256 / EdDSA; no secret needed
    jwt_audience: str = ""
    jwt_issuer: str = ""
    ip_allowlist: list[str] = field(default_factory=list)
    public_key: str = ""  # telnyx: the account's Ed25519 key; ghl: "" is GoHighLevel's published key
    legacy_public_key: str = ""  # ghl: RSA key for x-wh-signature; "" is the published key
    fields: dict[str, str] = field(default_factory=dict)  # generic: callsync field -> dotted path
    status_map: dict[str, str] = field(default_factory=dict)  # generic: sender value -> outcome
    reconcile: bool = False  # twilio: fill gaps from the account's call log (connector/reconcile)
    account_sid: str = ""
    api_key_sid: str = ""  # an API key instead of the auth token (its secret: keyring user twilio:<name>)
    reconcile_minutes: int = 15
    reconcile_lookback_hours: int = 24  # how far back the first run looks
    api_url: str = "https://api.twilio.com"
    incomplete_minutes: int = 10  # no final event this long after the last one: the call is incomplete

    @property
    def signature_scheme(self) -> str | None:
        """What checks the request's signature: hmac | standard | twilio | retell | vapi_secret |
        telnyx | ghl, or None (cloudevents/generic/vapi that verify with ``auth`` only)."""
        if self.kind in SIGNATURES:
            if self.signature:
                return self.signature
            return "vapi_secret" if self.kind == "vapi" and not self.auth else None
        return self.kind

    @property
    def signature_needs_secret(self) -> bool:
        return self.signature_scheme in ("hmac", "standard", "twilio", "retell", "vapi_secret")

    @property
    def auth_needs_secret(self) -> bool:
        return bool(self.auth) and not (self.auth == "bearer" and self.jwt and self.jwt_public_key)

    @property
    def payload_format(self) -> str:
        """The parser for this source's payloads: the kind's own, else ``format``."""
        return self.kind if self.kind in PAYLOAD_KINDS else self.format

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind in SIGNATURES and self.signature:
            data["signature"] = self.signature
        if self.signature_scheme == "hmac":
            data |= {
                "signature_header": self.signature_header,
                "signature_encoding": self.signature_encoding,
                "timestamp_header": self.timestamp_header,
            }
        data["tolerance_seconds"] = self.tolerance_seconds
        if self.format != "auto":
            data["format"] = self.format
        defaults = SourceConfig(self.name)
        for key in _OPTIONAL_KEYS:
            value = getattr(self, key)
            if value != getattr(defaults, key):
                data[key] = value
        return data


_OPTIONAL_KEYS = ("auth", "api_key_header", "api_key_param", "basic_user", "jwt", "jwt_public_key", "jwt_audience",
                  "jwt_issuer", "ip_allowlist", "public_key", "legacy_public_key", "fields", "status_map",
                  "reconcile", "account_sid", "api_key_sid", "reconcile_minutes", "reconcile_lookback_hours", "api_url",
                  "incomplete_minutes")


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    admin_port: int = 8788
    public_url: str = ""
    max_body_bytes: int = 256 * 1024
    ack_timeout_seconds: float = 10  # a webhook gets 503 + Retry-After when storing takes longer
    header_timeout_seconds: float = 10  # to receive a request's headers, and its body
    idle_timeout_seconds: float = 30  # an idle keep-alive connection is closed after this
    max_connections: int = 256  # open hooks connections; more are answered 503 and closed
    trusted_proxies: list[str] = field(default_factory=list)  # tunnel/proxy addresses whose X-Forwarded-For counts


@dataclass(slots=True)
class RetentionConfig:
    raw_payload_days: int = 30  # raw bodies and headers of older events are dropped; 0 keeps them


@dataclass(slots=True)
class StoreConfig:
    url: str = ""  # postgresql://user@host/db (server mode; no password here); "" = DATA_DIR/callsync.db


@dataclass(slots=True)
class Config:
    data_dir: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    ghl: GhlSettings = field(default_factory=lambda: _parse_ghl({}))
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    tunnel: TunnelSettings = field(default_factory=lambda: _parse_tunnel({}))
    automations: AutomationSettings = field(default_factory=lambda: _parse_automations({}))

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME

    @property
    def store_target(self) -> StoreTarget:
        """The store in force: PostgreSQL when a store URL is set (password looked up now: keyring user
        ``store`` or the environment), else the SQLite file in the data dir."""
        from connector.store.db import StoreTarget
        from connector.store_url import connection_url

        if self.store.url:
            return StoreTarget.postgres(connection_url(self.store.url))
        return StoreTarget.sqlite(self.db_path)

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME


def _typed(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = table.get(key, default)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}.{key} must be {kind.__name__}, got {value!r}")
    return value


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def parse_source(name: str, table: dict[str, Any]) -> SourceConfig:
    where = f"sources.{name}"
    if not SOURCE_NAME_RE.match(name):
        raise ConfigError(f"{where}: a source name uses letters, digits, '-' and '_' (max 64)")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    check_keys(table, [f for f in SourceConfig.__dataclass_fields__ if f != "name"], f"[{where}]")
    d = SourceConfig(name)
    src = SourceConfig(
        name=name,
        kind=_choice(_typed(table, "kind", str, where, d.kind), SOURCE_KINDS, f"{where}.kind"),
        signature_header=_typed(table, "signature_header", str, where, d.signature_header),
        signature_encoding=_choice(
            _typed(table, "signature_encoding", str, where, d.signature_encoding),
            SIGNATURE_ENCODINGS,
            f"{where}.signature_encoding",
        ),
        timestamp_header=_typed(table, "timestamp_header", str, where, d.timestamp_header),
        tolerance_seconds=_typed(table, "tolerance_seconds", int, where, d.tolerance_seconds),
        format=_choice(_typed(table, "format", str, where, d.format), FORMATS, f"{where}.format"),
        **{key: _typed(table, key, type(getattr(d, key)), where, getattr(d, key))
           for key in ("signature", "auth", *_OPTIONAL_KEYS[1:])},
    )
    if not src.signature_header.strip():
        raise ConfigError(f"{where}.signature_header must not be empty")
    if src.tolerance_seconds <= 0:
        raise ConfigError(f"{where}.tolerance_seconds must be positive")
    from connector.config_sources import check_source  # imports ConfigError from here

    check_source(src, where)
    return src


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``203.0.113.0/24``, ``2001:db8::/32`` or a single address as a network; None when it is neither."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _seconds(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigError(f"server.{key} must be a number of seconds (0 < s <= 3600), got {value!r}")
    return float(value)


def parse_server(table: dict[str, Any]) -> ServerConfig:
    if not isinstance(table, dict):
        raise ConfigError("server must be a table ([server])")
    check_keys(table, ServerConfig.__dataclass_fields__, "[server]")
    d = ServerConfig()
    server = ServerConfig(
        host=_typed(table, "host", str, "server", d.host),
        port=_typed(table, "port", int, "server", d.port),
        admin_port=_typed(table, "admin_port", int, "server", d.admin_port),
        public_url=_typed(table, "public_url", str, "server", d.public_url).rstrip("/"),
        max_body_bytes=_typed(table, "max_body_bytes", int, "server", d.max_body_bytes),
        ack_timeout_seconds=_seconds(table, "ack_timeout_seconds", d.ack_timeout_seconds),
        header_timeout_seconds=_seconds(table, "header_timeout_seconds", d.header_timeout_seconds),
        idle_timeout_seconds=_seconds(table, "idle_timeout_seconds", d.idle_timeout_seconds),
        max_connections=_typed(table, "max_connections", int, "server", d.max_connections),
        trusted_proxies=_typed(table, "trusted_proxies", list, "server", d.trusted_proxies),
    )
    for entry in server.trusted_proxies:
        if not isinstance(entry, str) or not network(entry):
            raise ConfigError(f"server.trusted_proxies: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)")
    if server.max_connections < 1:
        raise ConfigError("server.max_connections must be at least 1")
    for key in ("port", "admin_port"):
        if not 0 <= getattr(server, key) <= 65535:
            raise ConfigError(f"server.{key} must be a TCP port (0-65535)")
    if server.max_body_bytes < 1024:
        raise ConfigError("server.max_body_bytes must be at least 1024")
    return server


TOP_LEVEL_KEYS = ("server", "sources", "crm", "rules", "retention", "store", "tunnel", "automations", "actions", "alerts")


def parse_store(table: Any) -> StoreConfig:
    from connector.store_url import check_url

    if not isinstance(table, dict):
        raise ConfigError("store must be a table ([store])")
    check_keys(table, StoreConfig.__dataclass_fields__, "[store]")
    return StoreConfig(url=check_url(_typed(table, "url", str, "store", ""), "store.url"))


def parse_retention(table: Any) -> RetentionConfig:
    if not isinstance(table, dict):
        raise ConfigError("retention must be a table ([retention])")
    check_keys(table, RetentionConfig.__dataclass_fields__, "[retention]")
    days = _typed(table, "raw_payload_days", int, "retention", RetentionConfig().raw_payload_days)
    if days < 0:
        raise ConfigError("retention.raw_payload_days must be 0 (keep for ever) or a number of days")
    return RetentionConfig(raw_payload_days=days)
CRM_KEYS = ("ghl",)


def _parse_tunnel(table: Any) -> TunnelSettings:
    from connector.tunnel.settings import parse_tunnel  # imports ConfigError from here

    return parse_tunnel(table)


def _parse_automations(data: dict[str, Any]) -> AutomationSettings:
    from connector.automations.settings import parse_automations  # imports ConfigError from here

    return parse_automations(data)


def _parse_ghl(data: dict[str, Any]) -> GhlSettings:
    from connector.sync.settings import parse_ghl  # imports ConfigError from here

    return parse_ghl(data)


def parse_config(data: dict[str, Any], data_dir: Path) -> Config:
    """The whole file, validated once: [server], every source, [crm.ghl] and [[rules]]."""
    check_keys(data, TOP_LEVEL_KEYS, "top level")
    server = parse_server(data.get("server", {}))
    sources_table = data.get("sources", {})
    if not isinstance(sources_table, dict):
        raise ConfigError("sources must be a table of tables ([sources.<name>])")
    sources = {name: parse_source(name, table) for name, table in sources_table.items()}
    crm = data.get("crm", {})
    if not isinstance(crm, dict):
        raise ConfigError("crm must be a table of tables ([crm.ghl])")
    check_keys(crm, CRM_KEYS, "[crm]")
    return Config(data_dir=data_dir, server=server, sources=sources, raw=data, ghl=_parse_ghl(data),
                  retention=parse_retention(data.get("retention", {})), store=parse_store(data.get("store", {})),
                  tunnel=_parse_tunnel(data.get("tunnel", {})), automations=_parse_automations(data))


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data dir and a commented starter config on first run."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / CONFIG_NAME
        if not path.exists():
            path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"the data dir {data_dir} is not writable: {exc.strerror or exc}") from exc


def load_config(data_dir: Path, *, create: bool = True) -> Config:
    """Read and validate ``DATA_DIR/config.toml``.

    With ``create`` (``serve`` and the window) a missing data dir and a commented starter config
    are created; without it (tools such as ``check-crm``) a missing file means the defaults and
    nothing is written."""
    if create:
        ensure_data_dir(data_dir)
    path = data_dir / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if create:
            raise
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_config(data, data_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def apply_overrides(config: Config, **overrides: Any) -> Config:
    """Command-line options win over the file (``--host``, ``--port``, ``--admin-port``)."""
    for key, value in overrides.items():
        if value is not None:
            setattr(config.server, key, value)
    return config
