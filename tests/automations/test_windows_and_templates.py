"""Windows, thresholds with re-arm, alert ids, action templates."""

from __future__ import annotations

import pytest

from connector.automations.templates import TemplateError, placeholders, render, render_json, render_url
from connector.automations.windows import REARMED, TRIPPED, Ring, Trip, alert_id


def test_ring_keeps_running_sums_of_the_last_entries():
    ring = Ring(3, 2)
    pushed = [(1, 1, 0), (2, 0, 1), (3, 1, 1), (4, 1, 0), (5, 0, 0)]
    evicted = [ring.push(entry) for entry in pushed]
    assert evicted == [None, None, None, (1, 1, 0), (2, 0, 1)]
    assert list(ring.entries) == pushed[2:]
    assert ring.sums == [sum(e[1] for e in pushed[2:]), sum(e[2] for e in pushed[2:])]
    assert ring.recent_ids(2) == [5, 4]
    assert ring.recent_ids(5, where=1) == [3]


@pytest.mark.parametrize("values, threshold, rearm, expected", [
    # trips at the threshold itself (at or above), once while it stays over
    ([1.0, 2.0, 2.5, 3.0, 2.6], 2.5, 0.5, [None, None, TRIPPED, None, None]),
    # re-arms only once the value is rearm points under: 2.0 is not under 2.0, 1.9 is
    ([3.0, 2.2, 2.0, 1.9, 2.5], 2.5, 0.5, [TRIPPED, None, None, REARMED, TRIPPED]),
    # no figure (too few calls) neither trips nor re-arms
    ([None, 5.0, None, 0.0], 2.5, 0.5, [None, TRIPPED, None, REARMED]),
    # a float computed from integers reaches the threshold: 3/120*100
    ([3 / 120 * 100], 2.5, 0.5, [TRIPPED]),
    # rearm_points 0: back under the threshold re-arms
    ([20.0, 19.99, 20.0], 20.0, 0.0, [TRIPPED, REARMED, TRIPPED]),
])
def test_trip_crosses_once_and_rearms(values, threshold, rearm, expected):
    trip = Trip()
    assert [trip.check(v, threshold, rearm) for v in values] == expected
    assert trip.seq == expected.count(TRIPPED)


def test_alert_ids_are_stable_per_crossing_and_distinct_otherwise():
    first = alert_id("salt", "abandon", "Q1", "notify", 1)
    assert first == alert_id("salt", "abandon", "Q1", "notify", 1)
    others = {alert_id("salt", "abandon", "Q1", "notify", 2), alert_id("salt", "abandon", "Q2", "notify", 1),
              alert_id("salt", "abandon", "Q1", "act", 1), alert_id("other", "abandon", "Q1", "notify", 1),
              alert_id("salt", "did_burn", "Q1", "notify", 1)}
    assert first not in others and len(others) == 5
    assert first.startswith("al_") and len(first) == 27


@pytest.mark.parametrize("template, fields, expected", [
    ("/dids/{did}/suppress", {"did": "D1"}, "/dids/D1/suppress"),
    ('{{"did": "{did}", "rate": {rate}}}', {"did": "D1", "rate": 12.5}, '{"did": "D1", "rate": 12.5}'),
    ("{{literal}} {missing}!", {}, "{literal} !"),
    ("{calls} calls", {"calls": 30.0}, "30 calls"),
    ("{{{did}}}", {"did": "x"}, "{x}"),
])
def test_render(template, fields, expected):
    assert render(template, fields) == expected


@pytest.mark.parametrize("template", ["{did", "did}", "{did.__class__}", "{0}", "{rate:.1f}", "{}"])
def test_malformed_templates_are_refused(template):
    with pytest.raises(TemplateError):
        placeholders(template)


def test_url_values_are_percent_encoded_and_json_keeps_types():
    assert render_url("https://d/api?did={did}&c={campaign}", {"did": "+1 202/5", "campaign": "Q1&x"}) == \
        "https://d/api?did=%2B1%20202%2F5&c=Q1%26x"
    table = {"did": "{did}", "rate": "{rate}", "note": "rate {rate}%", "nested": {"list": ["{calls}", 3]}}
    assert render_json(table, {"did": "D1", "rate": 12.5, "calls": 30}) == {
        "did": "D1", "rate": 12.5, "note": "rate 12.5%", "nested": {"list": [30, 3]}}
