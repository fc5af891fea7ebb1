"""``[crm.ghl]`` and ``[[rules]]`` from config.toml -> typed settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connector.config import ConfigError, check_keys
from connector.model import OUTCOMES

MISSING_CONTACT = ("create", "skip")
CALLBACK_ACTIONS = ("increment", "reset", "none")
FIELD_VALUE_KEYS = ("field_value", "value", "fieldValue")


@dataclass(slots=True)
class Rule:
    """Outcome (and optionally disposition / campaign) -> what to write to the contact."""

    outcome: list[str] = field(default_factory=list)  # empty = any outcome
    disposition: list[str] = field(default_factory=list)  # case-insensitive, empty = any
    campaign: list[str] = field(default_factory=list)
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    note: bool = True
    callback: str = "none"  # increment | reset | none
    task: str = ""  # task title; empty = no task
    task_due_hours: float = 24.0

    def matches(self, outcome: str | None, disposition: str | None, campaign: str | None) -> bool:
        def ok(allowed: list[str], value: str | None) -> bool:
            return not allowed or (value is not None and value.casefold() in {a.casefold() for a in allowed})

        return ok(self.outcome, outcome) and ok(self.disposition, disposition) and ok(self.campaign, campaign)


# Defaults that work with zero configuration (documented in the README).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(outcome=["sale"], add_tags=["call connected", "sale"], remove_tags=["no answer"], callback="reset"),
    Rule(outcome=["connected"], add_tags=["call connected"], remove_tags=["no answer"], callback="reset"),
    Rule(outcome=["no_answer"], add_tags=["no answer"], callback="increment"),
    Rule(outcome=["busy"], add_tags=["no answer", "busy"], callback="increment"),
    Rule(outcome=["voicemail"], add_tags=["voicemail"], callback="increment"),
    Rule(outcome=["failed"], add_tags=["call failed"]),
    Rule(
        outcome=["abandoned"],
        add_tags=["abandoned call"],
        task="Call back: abandoned call",
        task_due_hours=1.0,
    ),
    Rule(outcome=["canceled"]),
)


@dataclass(slots=True)
class GhlSettings:
    location_id: str = ""
    base_url: str = "https://services.leadconnectorhq.com"
    rate_limit: str = "100/10s"
    daily_limit: int = 200_000
    custom_field_value_key: str = "field_value"
    default_region: str = "US"
    missing_contact: str = "create"
    callback_threshold: int = 3
    callback_exhausted_tag: str = "callback exhausted"
    active_dialing_tag: str = "active dialing"
    outcome_field: str = "contact.last_call_outcome"  # custom field keys; "" = do not write
    call_date_field: str = "contact.last_call_date"
    callback_count_field: str = "contact.callback_count"
    concurrency: int = 8
    timeout_seconds: float = 30.0
    contact_cache_seconds: float = 6 * 3600.0  # re-read a known contact's tags/fields after this
    lease_seconds: float = 120.0  # a claimed job whose worker died is taken again after this
    # Seconds to wait after the 1st, 2nd, ... failed try (+-20 % jitter); after the last, dead letter.
    retry_schedule: list[float] = field(default_factory=lambda: [5, 30, 120, 600, 1800, 7200, 21600])
    rules: list[Rule] = field(default_factory=lambda: list(DEFAULT_RULES))
    # The keys config.toml sets in [crm.ghl] (the rest are defaults): an edit back to a default drops the key.
    explicit_keys: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def configured(self) -> bool:
        return bool(self.location_id)

    def rule_for(self, outcome: str | None, disposition: str | None, campaign: str | None) -> Rule | None:
        """User rules first (in file order), then the defaults; first match wins."""
        for rule in [*self.rules, *DEFAULT_RULES]:
            if rule.matches(outcome, disposition, campaign):
                return rule
        return None


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where} must be a string or a list of strings")


def _typed(table: dict[str, Any], key: str, default: Any, where: str) -> Any:
    value = table.get(key, default)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(default):
        kind = {bool: "true or false", str: "a string", float: "a number", int: "a whole number"}
        raise ConfigError(f"{where}: {key} must be {kind.get(type(default), type(default).__name__)}, got {value!r}")
    return value


def parse_rule(table: dict[str, Any], index: int) -> Rule:
    where = f"[[rules]] #{index + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table (rules are written [[rules]])")
    check_keys(table, Rule.__dataclass_fields__, where)
    d = Rule()
    rule = Rule(
        outcome=_strings(table.get("outcome", []), f"{where}: outcome"),
        disposition=_strings(table.get("disposition", []), f"{where}: disposition"),
        campaign=_strings(table.get("campaign", []), f"{where}: campaign"),
        add_tags=_strings(table.get("add_tags", []), f"{where}: add_tags"),
        remove_tags=_strings(table.get("remove_tags", []), f"{where}: remove_tags"),
        note=_typed(table, "note", d.note, where),
        callback=_typed(table, "callback", d.callback, where),
        task=_typed(table, "task", d.task, where),
        task_due_hours=_typed(table, "task_due_hours", d.task_due_hours, where),
    )
    for outcome in rule.outcome:
        if outcome not in OUTCOMES:
            raise ConfigError(f"{where}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if rule.callback not in CALLBACK_ACTIONS:
        raise ConfigError(f"{where}: callback must be one of {', '.join(CALLBACK_ACTIONS)}; got {rule.callback!r}")
    if not 0 < rule.task_due_hours <= 24 * 365:
        raise ConfigError(f"{where}: task_due_hours must be more than 0 and at most a year of hours")
    return rule


def _check_ghl_values(settings: GhlSettings) -> None:
    from connector.sync.crm.ratelimit import parse_rate

    try:
        parse_rate(settings.rate_limit)
    except ValueError as exc:
        raise ConfigError(f"crm.ghl.rate_limit: {exc}") from None
    url = urlsplit(settings.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ConfigError(f"crm.ghl.base_url must be an http(s) URL, got {settings.base_url!r}")
    for name in ("daily_limit", "timeout_seconds", "lease_seconds"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"crm.ghl.{name} must be positive")
    if settings.contact_cache_seconds < 0:
        raise ConfigError("crm.ghl.contact_cache_seconds must not be negative")


NOT_KEYS = ("rules", "explicit_keys")  # GhlSettings fields that are not keys of [crm.ghl]


def parse_ghl(data: dict[str, Any]) -> GhlSettings:
    crm = data.get("crm", {})
    table = crm.get("ghl", {}) if isinstance(crm, dict) else None
    if not isinstance(table, dict):
        raise ConfigError("[crm.ghl] must be a table")
    check_keys(table, [f for f in GhlSettings.__dataclass_fields__ if f not in NOT_KEYS], "[crm.ghl]")
    defaults = GhlSettings()
    values: dict[str, Any] = {}
    for name in GhlSettings.__dataclass_fields__:
        if name in NOT_KEYS or name not in table:
            continue
        default = getattr(defaults, name)
        value = table[name]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if name == "retry_schedule":
            if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value
            ):
                raise ConfigError("crm.ghl.retry_schedule must be a non-empty list of seconds, e.g. [5, 30, 120]")
            value = [float(v) for v in value]
        if type(value) is not type(default):
            raise ConfigError(f"crm.ghl.{name} must be {type(default).__name__}, got {value!r}")
        values[name] = value
    settings = GhlSettings(**values, explicit_keys=frozenset(table))
    if settings.missing_contact not in MISSING_CONTACT:
        raise ConfigError(f"crm.ghl.missing_contact must be one of {', '.join(MISSING_CONTACT)}")
    if settings.custom_field_value_key not in FIELD_VALUE_KEYS:
        raise ConfigError(f"crm.ghl.custom_field_value_key must be one of {', '.join(FIELD_VALUE_KEYS)}")
    if settings.callback_threshold < 1 or settings.concurrency < 1:
        raise ConfigError("crm.ghl.callback_threshold and crm.ghl.concurrency must be at least 1")
    _check_ghl_values(settings)
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError("rules must be an array of tables ([[rules]])")
    settings.rules = [parse_rule(rule, i) for i, rule in enumerate(rules)]
    return settings
