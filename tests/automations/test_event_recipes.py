"""Caller-ID country check, voicemail, agent attendance and the pause alarm; facts from stored events."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connector.automations import caller_id, pause, voicemail
from connector.automations.facts import Fact, from_stored
from connector.calls import fold
from connector.model import CallEvent

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def dialled(event_id: int, src: str | None, dst: str | None, *, call: str = "c1", first: bool = True,
            direction: str = "outbound") -> Fact:
    return Fact(event_id, "dialer", "call.initiated", T0, call_id=call, status="initiated", first_initiated=first,
                direction=direction, from_number=src, to_number=dst, did=src, campaign="EU")


POOL = {"DE": ["+493012345670", "+493012345671"], "GB": ["+442071234567"]}


@pytest.mark.parametrize("src, dst, expected", [
    ("+12025550100", "+493098765432", ("US", "DE", "+493012345670")),  # US caller ID to Germany: mismatch
    ("+493012345670", "+493098765432", None),  # German caller ID to Germany
    ("+12025550100", "+14165550123", None),  # to Canada: home
    ("+12025550100", "2025550123", None),  # national US number: home
    ("+442071234567", "+33142685300", ("GB", "FR", None)),  # no French number in the pool
    (None, "+493098765432", (None, "DE", "+493012345670")),  # no caller ID at all
    ("+12025550100", "not a number", None),  # destination unreadable: nothing to check
])
def test_caller_id_country_check(src, dst, expected):
    state = caller_id.State(caller_id.Settings(pool=POOL, on_mismatch="swap"), salt="s")
    _, alerts = caller_id.evaluate(state, dialled(7, src, dst))
    if expected is None:
        assert alerts == []
        return
    caller, destination, suggestion = expected
    [alert] = alerts
    assert (alert.fields["caller_country"] or None, alert.fields["destination_country"]) == (caller, destination)
    assert (alert.fields["suggested"] or None) == suggestion and alert.action == "swap"
    assert alert.evidence["event_ids"] == [7] and alert.subject == "dialer/c1"
    assert (suggestion or f"no {destination} number") in alert.message


def test_caller_id_checks_each_call_once_and_never_inbound():
    state = caller_id.State(caller_id.Settings(), salt="s")
    assert len(caller_id.evaluate(state, dialled(1, "+12025550100", "+493098765432"))[1]) == 1
    assert caller_id.evaluate(state, dialled(2, "+12025550100", "+493098765432", first=False))[1] == []
    assert caller_id.evaluate(state, dialled(3, "+12025550100", "+493098765432", call="c2", direction="inbound"))[1] == []
    assert caller_id.status(state)["figure"] == {"checked": 1, "mismatched": 1, "rate": 100.0}


def stored(event: CallEvent, before, event_id: int):
    record = fold(before, "dialer", event)
    return SimpleNamespace(duplicate=False, event_id=event_id, source="dialer", event=event, before=before,
                           record=record, received_at=T0), record


def test_facts_from_stored_events_mark_the_finishing_and_first_events():
    start = CallEvent("unlimcall", "call.initiated", "k1", call_id="c1", status="initiated", direction="outbound",
                      from_number="+12025550100", to_number="+493098765432", did="did_de_1")
    amd = CallEvent("twilio", "twilio.amd", "k2", call_id="c1", answered_by="machine_start")
    done = CallEvent("unlimcall", "call.completed", "k3", call_id="c1", status="voicemail", occurred_at="2026-01-01T00:05:00Z")
    again = CallEvent("unlimcall", "call.voicemail.detected", "k4", call_id="c1", status="voicemail")
    facts, record = [], None
    for i, ev in enumerate((start, amd, done, again), start=1):
        value, record = stored(ev, record, i)
        facts.append(from_stored(value))
    assert [f.first_initiated for f in facts] == [True, False, False, False]
    assert [f.first_machine for f in facts] == [False, True, False, False]
    assert [f.finished for f in facts] == [False, False, True, False]
    assert facts[2].did == "did_de_1" and facts[2].outcome == "voicemail" and facts[2].at == T0 + 300
    test_event = CallEvent("unlimcall", "call.completed", "k9", call_id="t1", status="completed", test=True)
    assert from_stored(stored(test_event, None, 9)[0]) is None
    assert from_stored(SimpleNamespace(duplicate=True, event=start, event_id=None)) is None


def test_voicemail_acts_once_per_call():
    state = voicemail.State(voicemail.Settings(enabled=True, on_detected="drop_vm"), salt="s")
    first = Fact(1, "dialer", "twilio.amd", T0, call_id="c1", first_machine=True, to_number="+15551234567", agent="ann")
    later = Fact(2, "dialer", "call.completed", T0, call_id="c1", finished=True, call_status="voicemail")
    alerts = voicemail.evaluate(state, first)[1] + voicemail.evaluate(state, later)[1]
    assert [(a.subject, a.action, a.fields["agent"]) for a in alerts] == [("dialer/c1", "drop_vm", "ann")]
    assert voicemail.status(state)["figure"] == {"calls": 1, "voicemail": 1, "rate": 100.0}


# -- agent attendance and pauses ------------------------------------------------------------


def agent_event(kind: str, minute: float, agent: str = "ann", event_id: int = 0) -> Fact:
    return Fact(event_id or int(minute * 10) + 1, "dialer", f"agent.{kind}", T0 + minute * 60, agent=agent)


def utc_day(ts: float) -> float:
    return ts // 86400 * 86400


def pause_state(**settings) -> pause.State:
    return pause.State(pause.Settings(**settings), salt="s", day_start=utc_day)


def test_a_pause_alerts_once_when_it_runs_over_while_still_running():
    state = pause_state(max_minutes=15, on_overrun="page")
    for fact in (agent_event("login", 0), agent_event("pause", 60)):
        assert pause.evaluate(state, fact)[1] == []
    assert pause.tick(state, T0 + (60 + 14.9) * 60) == []
    [alert] = pause.tick(state, T0 + (60 + 15) * 60)  # at the limit itself
    assert alert.subject == "ann" and alert.action == "page" and alert.fields["minutes"] == 15.0
    assert pause.tick(state, T0 + 90 * 60) == []
    assert pause.evaluate(state, agent_event("resume", 95))[1] == []  # already alerted for this pause


def test_a_pause_that_ends_over_the_limit_alerts_at_its_end_and_the_next_pause_is_new():
    state = pause_state(max_minutes=15)
    pause.evaluate(state, agent_event("pause", 0))
    [first] = pause.evaluate(state, agent_event("resume", 16))[1]
    pause.evaluate(state, agent_event("break", 30))  # a synonym
    [second] = pause.evaluate(state, agent_event("ready", 50))[1]
    assert first.id != second.id and first.fields["minutes"] == 16.0


def test_attendance_per_agent_and_day():
    state = pause_state()
    stream = [agent_event("login", 0), agent_event("pause", 10), agent_event("resume", 15),
              agent_event("pause", 40), agent_event("resume", 42), agent_event("logout", 60),
              agent_event("login", 5, agent="bob"), agent_event("pause", 20, agent="bob")]
    for fact in stream:
        pause.evaluate(state, fact)
    rows = {r["agent"]: r for r in pause.attendance(state, T0 + 70 * 60)}
    assert rows["ann"] == {"agent": "ann", "state": "logged out", "logged_in_minutes": 60.0, "pause_minutes": 7.0,
                           "pauses": 2, "paused_minutes_now": None}
    assert rows["bob"]["state"] == "paused" and rows["bob"]["logged_in_minutes"] == 65.0
    assert rows["bob"]["pause_minutes"] == 50.0 and rows["bob"]["paused_minutes_now"] == 50.0


def test_attendance_splits_an_interval_at_midnight():
    state = pause_state()
    pause.evaluate(state, agent_event("login", 23 * 60))
    pause.evaluate(state, agent_event("logout", 25 * 60))
    assert state.days[("ann", T0)].logged_in == 3600 and state.days[("ann", T0 + 86400)].logged_in == 3600
