"""DID burn, abandon rate and carrier failures: synthetic call streams with a known crossing alert on
exactly that event, once; re-arm works; campaigns, DIDs and routes are independent."""

from __future__ import annotations

import random

import pytest

from connector.automations import abandon, carrier, did_burn
from tests.automations.helpers import alerts_at, call

D1, D2 = "+12025550101", "+12025550102"


# -- DID burn -------------------------------------------------------------------------------


def burn_state(**settings) -> did_burn.State:
    return did_burn.State(did_burn.Settings(**settings), salt="s")


def test_did_burn_alerts_on_the_call_that_crosses_with_a_fixed_baseline():
    # baseline 50 %, window 10, min 10: no answer / answered alternating (50 %, drop 0), then no answers:
    # they push out N, C, N, C -> 50, 40, 40, 30 % (drop 20 >= 15): the 14th call (index 13) trips.
    state = burn_state(window=10, min_calls=10, baseline=50.0, drop_points=15.0)
    stream = [call("connected" if i % 2 else "no_answer", did=D1) for i in range(10)]
    stream += [call("no_answer", did=D1) for _ in range(8)]
    found = alerts_at(did_burn.evaluate, state, stream)
    assert [i for i, _ in found] == [13]
    alert = found[0][1]
    assert alert.recipe == "did_burn" and alert.subject == D1 and alert.event_id == stream[13].event_id
    assert alert.fields["rate"] == 30.0 and alert.fields["baseline"] == 50.0 and alert.fields["drop"] == 20.0
    assert alert.evidence["event_ids"][0] == stream[13].event_id and alert.evidence["calls"] == 10


def test_did_burn_at_the_drop_itself_and_not_under_min_calls():
    # drop exactly 15 points trips (at or above); before min_calls nothing is judged even at 0 %.
    state = burn_state(window=20, min_calls=20, baseline=15.0, drop_points=15.0)
    stream = [call("no_answer", did=D1) for _ in range(25)]
    assert [i for i, _ in alerts_at(did_burn.evaluate, state, stream)] == [19]


def oracle_drops(stream, window, baseline_window, min_calls):
    """Brute force: the drop of each call's DID after that call (None when not judged)."""
    drops = []
    for i, fact in enumerate(stream):
        past = stream[: i + 1]
        mine = [f for f in past if f.did == fact.did][-window:]
        campaign = [f for f in past if f.campaign == fact.campaign][-baseline_window:]
        if len(mine) < min_calls or len(campaign) < min_calls:
            drops.append(None)
            continue
        rate = 100 * sum(f.outcome in did_burn.ANSWERED for f in mine) / len(mine)
        base = 100 * sum(f.outcome in did_burn.ANSWERED for f in campaign) / len(campaign)
        drops.append(base - rate)
    return drops


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_did_burn_matches_a_brute_force_oracle_per_did_once_per_crossing(seed):
    rng = random.Random(seed)
    stream = []
    for i in range(1500):  # D2 turns bad half way; D1 stays healthy; a second campaign alongside
        did = rng.choice([D1, D2, "+12025550103"])
        bad = did == D2 and i > 700
        stream.append(call("connected" if rng.random() < (0.1 if bad else 0.45) else "no_answer", did=did,
                           campaign=rng.choice(["Q1", "Q2"])))
    state = burn_state(window=50, baseline_window=300, min_calls=20, drop_points=15.0, rearm_points=3.0)
    found = alerts_at(did_burn.evaluate, state, stream)
    drops = oracle_drops(stream, 50, 300, 20)
    armed: dict[str, bool] = {}
    expected = []
    for i, (fact, drop) in enumerate(zip(stream, drops)):
        if drop is None:
            continue
        if armed.get(fact.did, True) and drop >= 15.0 - 1e-9:
            armed[fact.did] = False
            expected.append((i, fact.did))
        elif not armed.get(fact.did, True) and drop < 12.0 - 1e-9:
            armed[fact.did] = True
    assert [(i, a.subject) for i, a in found] == expected
    assert any(did == D2 for _, did in expected)
    assert len({a.id for _, a in found}) == len(found)


def test_did_burn_rearms_and_the_next_crossing_has_a_new_id():
    state = burn_state(window=10, min_calls=10, baseline=50.0, drop_points=15.0, rearm_points=5.0)
    bad = [call("no_answer", did=D1) for _ in range(10)]  # drop 50: trips on the 10th
    good = [call("connected", did=D1) for _ in range(10)]  # back to 100 %: re-arms
    found = alerts_at(did_burn.evaluate, state, bad + good + bad)
    assert [i for i, _ in found] == [9, 26]  # the 7th no answer after 10 answers (20 + 6): 30 %, drop 20
    assert found[0][1].id != found[1][1].id
    assert state.trips.get(D1).seq == 2


def test_did_burn_dids_and_inbound_calls_are_independent():
    state = burn_state(window=10, min_calls=10, baseline=50.0)
    stream = [call("no_answer", did=D2) for _ in range(9)]
    stream += [call("no_answer", did=D1, direction="inbound") for _ in range(20)]
    stream += [call("connected", did=D1) for _ in range(10)]
    assert alerts_at(did_burn.evaluate, state, stream) == []
    assert len(state.dids[D2].ring) == 9 and len(state.dids[D1].ring) == 10


# -- abandon rate ----------------------------------------------------------------------------


def abandon_state(**settings) -> abandon.State:
    return abandon.State(abandon.Settings(**settings), salt="s")


def test_abandon_with_the_default_settings_warns_then_acts_on_the_exact_calls():
    # 100 connected, then abandoned calls: 1/101 0.99 %, 2/102 1.96 %, 3/103 2.91 % (>= 2.5: notify),
    # 4/104 3.85 % (>= 3.0: act).  No-answer calls are in neither count.
    state = abandon_state(on_act="lower_pacing")
    stream = [call("connected") for _ in range(100)] + [call("no_answer") for _ in range(50)]
    stream += [call("abandoned") for _ in range(6)]
    found = alerts_at(abandon.evaluate, state, stream)
    assert [(i, a.level) for i, a in found] == [(152, "notify"), (153, "act")]
    notify, act = found[0][1], found[1][1]
    assert notify.action == "" and act.action == "lower_pacing"
    assert act.fields["rate"] == round(100 * 4 / 104, 3) and act.fields["abandoned"] == 4
    assert act.evidence["connected"] == 100 and act.evidence["calls"] == 154
    assert act.evidence["event_ids"][:4] == [stream[i].event_id for i in (153, 152, 151, 150)]


def test_abandon_rearms_only_rearm_points_under_the_threshold():
    state = abandon_state(window=100, min_calls=100, notify_at=2.5, act_at=50.0, rearm_points=0.5)
    stream = [call("connected") for _ in range(97)] + [call("abandoned") for _ in range(3)]  # [99] 3 %: trips
    stream += [call("connected") for _ in range(97)]  # the first 97 leave: still 3 %
    stream += [call("connected")]  # [197] an abandoned call leaves: 2.0 %, not under 2.0: no re-arm
    stream += [call("abandoned")]  # [198] one leaves, one comes: 2.0 %
    stream += [call("connected")]  # [199] the last of the first three leaves: 1.0 %: re-arms
    stream += [call("connected"), call("abandoned")]  # [201] 2.0 %
    stream += [call("abandoned")]  # [202] 3.0 %: the second crossing
    found = alerts_at(abandon.evaluate, state, stream)
    assert [i for i, _ in found] == [99, len(stream) - 1]
    assert found[0][1].id != found[1][1].id


def test_abandon_campaigns_are_independent():
    state = abandon_state(window=50, min_calls=10, notify_at=20.0, act_at=30.0)
    stream = []
    for i in range(40):
        stream.append(call("connected", campaign="A"))
        stream.append(call("abandoned" if i % 2 else "connected", campaign="B"))
    found = alerts_at(abandon.evaluate, state, stream)
    assert {a.subject for _, a in found} == {"B"}
    assert state.campaigns["A"].rate == 0.0


# -- carrier failures ------------------------------------------------------------------------


def carrier_state(**settings) -> carrier.State:
    return carrier.State(carrier.Settings(**settings), salt="s")


def test_carrier_trips_at_the_failure_rate_naming_the_top_codes():
    state = carrier_state(window=10, min_calls=10, max_failure_rate=20.0)
    stream = [call("connected", did=D1, sip=200) for _ in range(7)]
    stream += [call("no_answer", did=D1, sip=487)]  # the caller's own cancel is not a failure
    stream += [call("busy", did=D1, sip=486), call("failed", did=D1, sip=503, status="failed")]
    stream += [call("failed", did=D1, sip=503, status="failed")]
    found = alerts_at(carrier.evaluate, state, stream)
    assert [i for i, _ in found] == [9]  # 2 of 10 = 20 %: at the threshold
    alert = found[0][1]
    assert alert.evidence["classes"] == {"4xx": 1, "5xx": 1}
    assert alert.evidence["top_codes"] == [{"code": 486, "count": 1}, {"code": 503, "count": 1}]
    assert "486" in alert.message and "503" in alert.message


def test_carrier_codes_leave_with_their_calls_and_routes_are_independent():
    state = carrier_state(window=5, min_calls=5, max_failure_rate=60.0)
    stream = [call("failed", did=D1, sip=503, status="failed") for _ in range(2)]
    stream += [call("connected", did=D2, sip=200) for _ in range(5)]
    stream += [call("connected", did=D1, sip=200) for _ in range(5)]
    assert alerts_at(carrier.evaluate, state, stream) == []
    assert state.routes[D1].codes == {} and state.routes[D1].ring.sums == [0]
    failures = [call("failed", did=D2, sip=480) for _ in range(3)]
    found = alerts_at(carrier.evaluate, state, failures)
    assert [(i, a.subject) for i, a in found] == [(2, D2)]
