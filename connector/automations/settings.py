"""``[automations.<recipe>]``, ``[actions.<name>]`` and ``[alerts]`` in config.toml -> typed settings.

Every recipe has ``enabled``; a recipe's ``on_*`` key names an ``[actions.<name>]`` table.  Mistakes
are one-line :class:`connector.config.ConfigError`s naming the key (unknown keys get a "did you mean").
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from connector.automations import abandon, caller_id, carrier, did_burn, pause, voicemail
from connector.automations.templates import TemplateError, json_placeholders, placeholders
from connector.config import ConfigError, check_keys

RECIPES: dict[str, Any] = {m.NAME: m for m in (did_burn, abandon, caller_id, voicemail, carrier, pause)}
TITLES = {"did_burn": "DID burn", "abandon": "Abandon rate", "caller_id": "Caller-ID country", "voicemail": "Voicemail",
          "carrier": "Carrier failures", "pause": "Agent pauses", "callback": "Callback exhaustion"}
ACTION_KEYS = {name: [f.name for f in dataclasses.fields(m.Settings) if f.name.startswith("on_")]
               for name, m in RECIPES.items()}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# What action templates may name: every recipe's alert fields, plus the alert's own and the secret.
FIELDS = frozenset({
    "id", "recipe", "level", "subject", "message", "created_at", "secret",
    "did", "campaign", "rate", "baseline", "drop", "calls", "answered", "threshold", "abandoned", "connected",
    "route", "failed", "top_codes", "call_id", "source", "from", "to", "caller_country", "destination_country",
    "suggested", "agent", "answered_by", "minutes", "max_minutes", "paused_since",
})
DEFAULT_RETRIES = [5.0, 30.0, 120.0, 600.0, 1800.0]


@dataclass(slots=True)
class ActionSettings:
    name: str
    url: str = ""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # a string template ...
    json: dict[str, Any] | None = None  # ... or a table whose string values are templates
    timeout_seconds: float = 10.0

    @property
    def uses_secret(self) -> bool:
        names = placeholders(self.url) + [n for v in self.headers.values() for n in placeholders(v)]
        names += placeholders(self.body) + json_placeholders(self.json or {})
        return "secret" in names

    @property
    def secret_user(self) -> str:
        return f"action:{self.name}"


@dataclass(slots=True)
class AlertSettings:
    notify: list[str] = field(default_factory=list)  # Apprise URLs
    desktop: bool = True  # a desktop notification from the tray (the window)
    webhook_url: str = ""  # signed outbound webhook (Standard Webhooks), secret in keyring "alerts:webhook"
    retry_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_RETRIES))
    timeout_seconds: float = 10.0

    WEBHOOK_SECRET_USER = "alerts:webhook"


@dataclass(slots=True)
class AutomationSettings:
    recipes: dict[str, Any] = field(default_factory=lambda: {n: m.Settings() for n, m in RECIPES.items()})
    actions: dict[str, ActionSettings] = field(default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def enabled(self, name: str) -> bool:
        return bool(self.recipes[name].enabled)


def _value(where: str, key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the setting's default."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        kind = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "a whole number"
    elif isinstance(default, float) or default is None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        kind = "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, list):
        ok, kind = isinstance(value, list), "a list"
    else:
        ok, kind = isinstance(value, dict), "a table"
    if not ok:
        raise ConfigError(f"{where}.{key} must be {kind}, got {value!r}")
    return value


def _region(where: str, code: Any) -> str:
    if not isinstance(code, str) or code.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{where}: {code!r} is not a country code (ISO 3166, e.g. \"US\", \"DE\")")
    return code.upper()


def _check_recipe(name: str, s: Any, where: str, actions: dict[str, ActionSettings]) -> None:
    for key in ("window", "baseline_window", "min_calls"):
        if hasattr(s, key) and getattr(s, key) < 1:
            raise ConfigError(f"{where}.{key} must be at least 1")
    if hasattr(s, "min_calls") and hasattr(s, "window") and name != "abandon" and s.min_calls > s.window:
        raise ConfigError(f"{where}.min_calls ({s.min_calls}) is larger than window ({s.window}): it would never trip")
    for key in ("drop_points", "notify_at", "act_at", "max_failure_rate", "baseline"):
        value = getattr(s, key, None)
        if value is not None and not 0 < value <= 100:
            raise ConfigError(f"{where}.{key} must be a percentage (0 < x <= 100), got {value!r}")
    if getattr(s, "rearm_points", 0) < 0:
        raise ConfigError(f"{where}.rearm_points must not be negative")
    if name == "abandon" and s.act_at < s.notify_at:
        raise ConfigError(f"{where}.act_at ({s.act_at}) must not be under notify_at ({s.notify_at})")
    if name == "pause" and s.max_minutes <= 0:
        raise ConfigError(f"{where}.max_minutes must be positive")
    if name == "carrier" and not all(isinstance(c, int) and 100 <= c <= 699 for c in s.ignore_codes):
        raise ConfigError(f"{where}.ignore_codes must be SIP codes (100-699)")
    if name == "caller_id":
        s.home = [_region(f"{where}.home", c) for c in s.home]
        s.default_region = _region(f"{where}.default_region", s.default_region)
        pool: dict[str, list[str]] = {}
        for code, numbers in s.pool.items():
            if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
                raise ConfigError(f"{where}.pool.{code} must be a list of phone numbers")
            pool[_region(f"{where}.pool", code)] = numbers
        s.pool = pool
    for key in ACTION_KEYS[name]:
        action = getattr(s, key)
        if action and action not in actions:
            known = ", ".join(sorted(actions)) or "none defined"
            raise ConfigError(f"{where}.{key} names the action {action!r}, but there is no [actions.{action}] ({known})")


def parse_recipe(name: str, table: Any, actions: dict[str, ActionSettings]) -> Any:
    where = f"automations.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([{where}])")
    module = RECIPES[name]
    defaults = module.Settings()
    names = [f.name for f in dataclasses.fields(defaults)]
    check_keys(table, names, f"[{where}]")
    values = {key: _value(where, key, table[key], getattr(defaults, key)) for key in names if key in table}
    settings = module.Settings(**values)
    _check_recipe(name, settings, where, actions)
    return settings


def _check_template(where: str, template: str) -> None:
    try:
        names = placeholders(template)
    except TemplateError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for name in names:
        if name not in FIELDS:
            check_keys({name: None}, FIELDS, f"{where}: placeholder")


def parse_action(name: str, table: Any) -> ActionSettings:
    where = f"actions.{name}"
    if not NAME_RE.match(name):
        raise ConfigError(f"{where}: an action name uses letters, digits, '-' and '_' (max 64)")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([{where}])")
    check_keys(table, [f.name for f in dataclasses.fields(ActionSettings) if f.name != "name"], f"[{where}]")
    d = ActionSettings(name)
    action = ActionSettings(
        name=name,
        url=_value(where, "url", table.get("url", ""), ""),
        method=_value(where, "method", table.get("method", d.method), "").upper(),
        headers=_value(where, "headers", table.get("headers", {}), {}),
        body=_value(where, "body", table.get("body", ""), ""),
        json=_value(where, "json", table["json"], {}) if "json" in table else None,
        timeout_seconds=_value(where, "timeout_seconds", table.get("timeout_seconds", d.timeout_seconds), 0.0),
    )
    if not re.match(r"^https?://", action.url):
        raise ConfigError(f"{where}.url must be an http:// or https:// URL, got {action.url!r}")
    if action.method not in METHODS:
        raise ConfigError(f"{where}.method must be one of {', '.join(METHODS)}; got {action.method!r}")
    if action.body and action.json is not None:
        raise ConfigError(f"{where}: use body (a string template) or json (a table), not both")
    if not 0 < action.timeout_seconds <= 300:
        raise ConfigError(f"{where}.timeout_seconds must be between 0 and 300 seconds")
    _check_template(f"{where}.url", action.url)
    _check_template(f"{where}.body", action.body)
    for header, value in action.headers.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}.headers.{header} must be a string")
        _check_template(f"{where}.headers.{header}", value)
    try:
        for placeholder in json_placeholders(action.json or {}):
            _check_template(f"{where}.json", "{" + placeholder + "}")
    except TemplateError as exc:
        raise ConfigError(f"{where}.json: {exc}") from None
    return action


def parse_alerts(table: Any) -> AlertSettings:
    if not isinstance(table, dict):
        raise ConfigError("alerts must be a table ([alerts])")
    check_keys(table, [f.name for f in dataclasses.fields(AlertSettings)], "[alerts]")
    d = AlertSettings()
    values = {key: _value("alerts", key, table[key], getattr(d, key)) for key in table}
    alerts = AlertSettings(**values)
    if not all(isinstance(u, str) and "://" in u for u in alerts.notify):
        raise ConfigError("alerts.notify must be a list of Apprise URLs (e.g. \"slack://...\", \"json://host/path\")")
    if alerts.webhook_url and not re.match(r"^https?://", alerts.webhook_url):
        raise ConfigError(f"alerts.webhook_url must be an http:// or https:// URL, got {alerts.webhook_url!r}")
    if not alerts.retry_schedule or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= 86400 for s in alerts.retry_schedule):
        raise ConfigError("alerts.retry_schedule must be a list of delays in seconds (0 < s <= 86400)")
    alerts.retry_schedule = [float(s) for s in alerts.retry_schedule]
    if not 0 < alerts.timeout_seconds <= 300:
        raise ConfigError("alerts.timeout_seconds must be between 0 and 300 seconds")
    return alerts


def parse_automations(data: dict[str, Any]) -> AutomationSettings:
    """The ``automations``, ``actions`` and ``alerts`` parts of a parsed config file."""
    actions_table = data.get("actions", {})
    if not isinstance(actions_table, dict):
        raise ConfigError("actions must be a table of tables ([actions.<name>])")
    actions = {name: parse_action(name, table) for name, table in actions_table.items()}
    recipes_table = data.get("automations", {})
    if not isinstance(recipes_table, dict):
        raise ConfigError("automations must be a table of tables ([automations.<recipe>])")
    check_keys(recipes_table, RECIPES, "[automations]")
    recipes = {name: (parse_recipe(name, recipes_table[name], actions) if name in recipes_table
                      else RECIPES[name].Settings()) for name in RECIPES}
    return AutomationSettings(recipes, actions, parse_alerts(data.get("alerts", {})))
