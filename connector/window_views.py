"""What the facade hands the window: plain data, no Qt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.config import SourceConfig
from connector.sync.settings import GhlSettings, Rule


class SecretStoreUnavailable(RuntimeError):
    """No usable OS keyring: the message names the environment variable to use instead."""


@dataclass(slots=True)
class KeyringStatus:
    usable: bool
    message: str
    hint: str = (
        "For a source named dialer that is CALLSYNC_SECRET_DIALER. callsync never falls back to a plain "
        "file; restart it after setting the variables."
    )


@dataclass(slots=True)
class Snapshot:
    metrics: dict[str, Any]
    level: str
    verdict: str
    target: str | None
    minutes: list[int]  # start of each minute (unix seconds) of the chart window
    by_outcome: dict[str, list[int]]  # outcome ("" = not a final event) -> events per minute
    latency: list[dict[str, Any]]  # {"minute", "p50", "p95"} in ms
    taken_at: float
    rejections: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> reason -> n, last 24 h
    alerts: list[str] = field(default_factory=list)  # sources whose signatures failed in the last hour
    tunnel: Any = None  # connector.tunnel.controls.TunnelView: the public URL's state
    gap_notice: str | None = None  # "callsync was off from 14:02 to 16:40; 37 calls filled in from Twilio; ..."


@dataclass(slots=True)
class SourceView:
    config: SourceConfig
    has_secret: bool
    secret_env: str
    secret_from_env: bool  # the environment wins over the keyring: typing a new secret would not apply
    local_url: str
    public_url: str  # "" until [server] public_url is set


@dataclass(slots=True)
class SecretVariable:
    """An environment variable that holds a secret this configuration needs (when there is no keyring)."""

    name: str
    what: str
    is_set: bool


@dataclass(slots=True)
class SendResult:
    ok: bool
    message: str
    status: int | None = None
    event_id: int | None = None
    call_id: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CrmView:
    settings: GhlSettings
    has_token: bool
    token_env: str
    token_from_env: bool  # the environment wins over the keyring
    auth_error: str | None  # GoHighLevel rejected the token (until a new one is saved)
    rules: list[Rule]  # what the editor shows: the file's rules, else the built-in defaults
    rules_are_defaults: bool
