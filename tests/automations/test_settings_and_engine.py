"""[automations.*], [actions.*] and [alerts] parsing; the engine over a mixed stream."""

from __future__ import annotations

import pytest

from connector.automations.engine import Engine
from connector.automations.settings import parse_automations
from connector.config import ConfigError
from tests.automations.helpers import call

ACTION = {"url": "https://dialer.example/api/dids/{did}/suppress", "headers": {"Authorization": "Bearer {secret}"},
          "json": {"did": "{did}", "reason": "answer rate {rate}%"}}


def test_defaults_every_recipe_has_enabled_and_harmless_ones_are_on():
    settings = parse_automations({})
    assert {name: s.enabled for name, s in settings.recipes.items()} == {
        "did_burn": True, "abandon": True, "caller_id": True, "voicemail": False, "carrier": True, "pause": True}
    d = settings.recipes["did_burn"]
    assert (d.window, d.baseline_window, d.drop_points, d.min_calls) == (100, 1000, 15.0, 30)
    a = settings.recipes["abandon"]
    assert (a.window, a.notify_at, a.act_at, a.rearm_points) == (500, 2.5, 3.0, 0.5)
    assert settings.recipes["caller_id"].home == ["US", "CA"] and settings.recipes["pause"].max_minutes == 15.0
    assert (settings.recipes["carrier"].window, settings.recipes["carrier"].max_failure_rate) == (200, 20.0)


def test_a_full_configuration():
    settings = parse_automations({
        "automations": {"did_burn": {"window": 50, "baseline": 40, "on_burn": "suppress_did"},
                        "caller_id": {"home": ["us"], "pool": {"de": ["+4930123"]}},
                        "voicemail": {"enabled": True, "on_detected": "suppress_did"}},
        "actions": {"suppress_did": ACTION},
        "alerts": {"notify": ["json://127.0.0.1:9/alerts"], "webhook_url": "https://bi.example/hook"},
    })
    assert settings.recipes["did_burn"].baseline == 40.0 and settings.recipes["did_burn"].on_burn == "suppress_did"
    assert settings.recipes["caller_id"].home == ["US"] and settings.recipes["caller_id"].pool == {"DE": ["+4930123"]}
    action = settings.actions["suppress_did"]
    assert action.method == "POST" and action.uses_secret and action.secret_user == "action:suppress_did"
    assert settings.alerts.notify == ["json://127.0.0.1:9/alerts"]


@pytest.mark.parametrize("data, message", [
    ({"automations": {"did_burn": {"windw": 5}}}, "unknown key 'windw' (did you mean 'window'?)"),
    ({"automations": {"abandoned": {}}}, "unknown key 'abandoned' (did you mean 'abandon'?)"),
    ({"automations": {"abandon": {"enabled": "yes"}}}, "automations.abandon.enabled must be true or false"),
    ({"automations": {"abandon": {"notify_at": 4, "act_at": 3}}}, "act_at (3.0) must not be under notify_at"),
    ({"automations": {"did_burn": {"on_burn": "nope"}}}, "names the action 'nope', but there is no [actions.nope]"),
    ({"automations": {"did_burn": {"min_calls": 200}}}, "min_calls (200) is larger than window (100)"),
    ({"automations": {"carrier": {"max_failure_rate": 120}}}, "must be a percentage"),
    ({"automations": {"caller_id": {"home": ["USA"]}}}, "'USA' is not a country code"),
    ({"actions": {"a": {"url": "ftp://x"}}}, "actions.a.url must be an http:// or https:// URL"),
    ({"actions": {"a": {"url": "https://x/{dd}"}}}, "unknown key 'dd' (did you mean 'did'?)"),
    ({"actions": {"a": {"url": "https://x/{did"}}}, "unmatched '{'"),
    ({"actions": {"a": {"url": "https://x", "body": "x", "json": {}}}}, "use body (a string template) or json"),
    ({"actions": {"a": {"url": "https://x", "method": "SEND"}}}, "actions.a.method must be one of"),
    ({"alerts": {"notify": "slack://x"}}, "alerts.notify must be a list"),
    ({"alerts": {"retry_schedule": []}}, "alerts.retry_schedule must be a list of delays"),
])
def test_mistakes_are_one_line_naming_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        parse_automations(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_engine_feeds_only_enabled_recipes_and_reports_each():
    settings = parse_automations({"automations": {
        "abandon": {"window": 20, "min_calls": 10, "notify_at": 10.0, "act_at": 20.0},
        "carrier": {"enabled": False, "window": 10, "min_calls": 10}}})
    engine = Engine(settings, salt="s")
    stream = [call("connected", sip=200) for _ in range(9)] + [call("abandoned", sip=503, status="failed")] * 3
    alerts = engine.feed(stream)
    assert [(a.recipe, a.level) for a in alerts] == [("abandon", "notify"), ("abandon", "act")]
    status = {row["name"]: row for row in engine.status()}
    assert status["carrier"]["enabled"] is False and status["carrier"]["subjects"] == 0
    assert status["abandon"]["enabled"] is True and status["abandon"]["state"] == "tripped"
    assert status["abandon"]["figure"] == {"campaign": "Q1", "rate": round(300 / 12, 3)}
    assert engine.drain_trips() == [("abandon", "Q1", "act", False, 1), ("abandon", "Q1", "notify", False, 1)]
    assert engine.drain_trips() == []


def test_rebuild_then_settle_raises_a_crossing_missed_while_down_under_the_same_id():
    settings = parse_automations({"automations": {"abandon": {"window": 20, "min_calls": 10, "notify_at": 10.0,
                                                              "act_at": 50.0}}})
    stream = [call("connected") for _ in range(9)] + [call("abandoned") for _ in range(2)]
    live = Engine(settings, salt="s")
    [expected] = live.feed(stream)
    restarted = Engine(settings, salt="s")  # stopped after storing the events, before storing the alert
    restarted.rebuild("abandon", stream)
    [again] = restarted.settle(now=0)
    assert again.id == expected.id
    saved = Engine(settings, salt="s")  # ... and when the alert was stored with its state, nothing new
    saved.load_trips(live.drain_trips())
    saved.rebuild("abandon", stream)
    assert saved.settle(now=0) == []
