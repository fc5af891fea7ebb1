"""Reconciliation settings of a ``[sources.<name>]`` table (Twilio sources):

```toml
[sources.twilio]
kind = "twilio"
reconcile = true                      # fill gaps from Twilio's call log (at start-up and every reconcile_minutes)
account_sid = "AC..."                 # the account whose calls are listed
# api_key_sid = "SK..."               # with an API key: its secret in keyring user twilio:<source>
# reconcile_minutes = 15
# reconcile_lookback_hours = 24       # how far back the first run looks
# incomplete_minutes = 10             # a call without a final event this long after its last one is incomplete
# api_url = "https://api.twilio.com"
```

The API token: keyring user ``twilio:<source>`` or ``CALLSYNC_TWILIO_TOKEN_<NAME>`` when set (an API key
secret, or another account token), else the source's own secret (Twilio signs callbacks with the
account's auth token, which is also the API password).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from connector.reconcile.twilio_api import DEFAULT_API_URL

if TYPE_CHECKING:
    from connector.config import SourceConfig

RECONCILE_KEYS = ("reconcile", "account_sid", "api_key_sid", "reconcile_minutes", "reconcile_lookback_hours",
                  "api_url")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")


def token_user(source: str) -> str:
    return f"twilio:{source}"


def check_reconcile(src: SourceConfig, where: str) -> None:
    from connector.config import ConfigError

    if src.incomplete_minutes < 1:
        raise ConfigError(f"{where}.incomplete_minutes must be at least 1")
    if src.kind != "twilio":
        for key in RECONCILE_KEYS:
            if getattr(src, key) != _default(key):
                raise ConfigError(f"{where}.{key}: reconciliation works with Twilio sources only (kind = \"twilio\")")
        return
    if src.account_sid and not ACCOUNT_SID.match(src.account_sid):
        raise ConfigError(f"{where}.account_sid must be a Twilio account SID (AC followed by 32 hex digits)")
    if src.reconcile and not src.account_sid:
        raise ConfigError(f"{where}.account_sid is required with reconcile = true: the Twilio account SID (AC...)")
    if src.api_key_sid and not API_KEY_SID.match(src.api_key_sid):
        raise ConfigError(f"{where}.api_key_sid must be a Twilio API key SID (SK followed by 32 hex digits)")
    if not 1 <= src.reconcile_minutes <= 1440:
        raise ConfigError(f"{where}.reconcile_minutes must be 1-1440")
    if not 1 <= src.reconcile_lookback_hours <= 24 * 30:
        raise ConfigError(f"{where}.reconcile_lookback_hours must be 1-720")
    if not re.match(r"^https?://[^/\s]+", src.api_url):
        raise ConfigError(f"{where}.api_url must be an http(s) URL, e.g. {DEFAULT_API_URL}")


def _default(key: str) -> object:
    from connector.config import SourceConfig

    return getattr(SourceConfig("x"), key)
