"""Disposition rules and CRM plans: pure tables."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connector.config import ConfigError
from connector.model import CallRecord
from connector.sync.rules import PlanError, callback_effects, marker_for, plan_for, to_e164
from connector.sync.settings import GhlSettings, Rule, parse_ghl

NOW = datetime(2026, 6, 4, 12, 0, tzinfo=timezone.utc)


def call(outcome: str, **kw) -> CallRecord:
    base = dict(source="dialer", call_id="c1", status="completed", outcome=outcome, direction="outbound",
                from_number="+12025550000", to_number="(202) 555-0123", talk_seconds=75.0,
                ended_at="2026-06-04T09:17:45Z")
    return CallRecord(**(base | kw))


@pytest.mark.parametrize(
    "outcome, add, remove, callback, task",
    [
        ("connected", ["call connected"], ["no answer"], "reset", None),
        ("sale", ["call connected", "sale"], ["no answer"], "reset", None),
        ("no_answer", ["no answer"], [], "increment", None),
        ("busy", ["no answer", "busy"], [], "increment", None),
        ("voicemail", ["voicemail"], [], "increment", None),
        ("failed", ["call failed"], [], "none", None),
        ("abandoned", ["abandoned call"], [], "none", "Call back: abandoned call"),
        ("canceled", [], [], "none", None),
    ],
)
def test_default_rules_for_every_outcome(outcome, add, remove, callback, task):
    plan = plan_for(call(outcome), GhlSettings(location_id="loc"), NOW)
    assert (plan.add_tags, plan.remove_tags, plan.callback) == (add, remove, callback)
    assert (plan.task[0] if plan.task else None) == task
    assert plan.phone == "+12025550123"
    assert plan.note and plan.note.endswith(marker_for("dialer", "c1"))
    assert plan.fields == {"contact.last_call_outcome": outcome.replace("_", " "),
                           "contact.last_call_date": "2026-06-04"}


def test_abandoned_task_is_due_in_an_hour():
    plan = plan_for(call("abandoned"), GhlSettings(location_id="loc"), NOW)
    assert plan.task[2] == "2026-06-04T13:00:00Z"


def test_user_rules_win_in_file_order_and_may_match_disposition_and_campaign():
    settings = GhlSettings(location_id="loc", rules=[
        Rule(outcome=["connected"], disposition=["dnc"], add_tags=["do not call"], note=False),
        Rule(outcome=["connected"], campaign=["Q1-Sales"], add_tags=["q1 reached"]),
    ])
    assert plan_for(call("connected", disposition="DNC"), settings, NOW).add_tags == ["do not call"]
    assert plan_for(call("connected", disposition="DNC"), settings, NOW).note is None
    assert plan_for(call("connected", campaign="q1-sales"), settings, NOW).add_tags == ["q1 reached"]
    assert plan_for(call("connected", campaign="Q2"), settings, NOW).add_tags == ["call connected"]


def test_a_tag_both_added_and_removed_is_only_added():
    settings = GhlSettings(location_id="loc", rules=[Rule(add_tags=["x"], remove_tags=["x", "y"])])
    plan = plan_for(call("connected"), settings, NOW)
    assert (plan.add_tags, plan.remove_tags) == (["x"], ["y"])


@pytest.mark.parametrize(
    "action, before, threshold, expected",
    [
        ("increment", 0, 3, (1, [], [])),
        ("increment", 1, 3, (2, [], [])),
        ("increment", 2, 3, (3, ["callback exhausted"], ["active dialing"])),
        ("increment", 5, 3, (6, ["callback exhausted"], ["active dialing"])),
        ("increment", 0, 1, (1, ["callback exhausted"], ["active dialing"])),
        ("reset", 2, 3, (0, [], [])),
        ("reset", 3, 3, (0, [], ["callback exhausted"])),
        ("none", 2, 3, (2, [], [])),
    ],
)
def test_callback_counter_table(action, before, threshold, expected):
    assert callback_effects(action, before, GhlSettings(callback_threshold=threshold)) == expected


@pytest.mark.parametrize(
    "number, region, expected",
    [
        ("+12025550123", "US", "+12025550123"),
        ("(202) 555-0123", "US", "+12025550123"),
        ("5551234567", "US", "+15551234567"),
        ("030 123456789", "DE", "+4930123456789"),
        ("+44 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_phone_numbers_become_e164(number, region, expected):
    assert to_e164(number, region) == expected


@pytest.mark.parametrize("number", [None, "", "not a number", "12"])
def test_unusable_phone_numbers_are_plan_errors(number):
    with pytest.raises(PlanError):
        to_e164(number, "US")


def test_settings_parse_with_defaults_and_rules():
    settings = parse_ghl({
        "crm": {"ghl": {"location_id": "loc", "callback_threshold": 5, "timeout_seconds": 10,
                        "retry_schedule": [1, 2]}},
        "rules": [{"outcome": ["sale"], "add_tags": "won", "callback": "reset"}],
    })
    assert settings.location_id == "loc" and settings.callback_threshold == 5
    assert settings.timeout_seconds == 10.0 and settings.retry_schedule == [1.0, 2.0]
    assert settings.rules == [Rule(outcome=["sale"], add_tags=["won"], callback="reset")]
    assert parse_ghl({}).configured is False


@pytest.mark.parametrize(
    "data, message",
    [
        ({"crm": {"ghl": {"callback_threshold": "3"}}}, "callback_threshold must be int"),
        ({"crm": {"ghl": {"missing_contact": "ignore"}}}, "missing_contact must be one of"),
        ({"crm": {"ghl": {"custom_field_value_key": "val"}}}, "custom_field_value_key"),
        ({"crm": {"ghl": {"locationid": "x"}}}, "unknown key .locationid. .did you mean .location_id.?"),
        ({"crm": {"ghl": {"retry_schedule": []}}}, "retry_schedule"),
        ({"rules": [{"outcome": "won"}]}, "is not one of"),
        ({"rules": [{"outcome": "sale", "tags": ["x"]}]}, "unknown key .tags."),
        ({"rules": [{"callback": "double"}]}, "callback must be one of"),
        ({"rules": {"outcome": "sale"}}, "array of tables"),
    ],
)
def test_settings_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_ghl(data)
