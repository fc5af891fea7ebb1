"""Folding call events into records, and deriving outcomes."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.calls import derive_outcome, fold, fold_events, merge_status
from connector.formats import normalize
from connector.model import (
    ANSWERED,
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    INITIATED,
    NO_ANSWER,
    OUTCOME_ABANDONED,
    OUTCOME_BUSY,
    OUTCOME_CANCELED,
    OUTCOME_CONNECTED,
    OUTCOME_FAILED,
    OUTCOME_NO_ANSWER,
    OUTCOME_SALE,
    OUTCOME_VOICEMAIL,
    QUEUED,
    RINGING,
    TERMINAL_STATUSES,
    VOICEMAIL,
    CallEvent,
    CallRecord,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}
ALL_STATUSES = [QUEUED, INITIATED, RINGING, ANSWERED, *sorted(TERMINAL_STATUSES)]
T0 = datetime(2026, 8, 17, 21, 14, 58, tzinfo=timezone.utc)


def sample(name: str) -> CallEvent:
    path = SAMPLES / name
    [event] = normalize(path.read_bytes(), CONTENT_TYPES[path.suffix], {})
    return event


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ev(key: str = "e", **values) -> CallEvent:
    values.setdefault("call_id", "c1")
    return CallEvent(format="test", event_type=values.pop("event_type", "call.test"), dedupe_key=key, **values)


def fold_in_order(events, source="src") -> CallRecord:
    return reduce(lambda record, event: fold(record, source, event), events, None)


def subset(record: CallRecord, expected: dict) -> dict:
    actual = record.to_dict()
    return {key: actual[key] for key in expected}


# --- whole calls from the sample payloads ---------------------------------------

SCENARIOS = {
    "twilio": ["twilio_initiated.form", "twilio_ringing.form", "twilio_in_progress.form", "twilio_completed.form"],
    "unlimcall": ["unlimcall_call_initiated.json", "unlimcall_call_answered.json", "unlimcall_call_completed.json"],
    "dialercx": ["dialercx_call_started.json", "dialercx_call_ended.json", "dialercx_recording_ready.json"],
    "standard": ["standard_call_ringing.json", "standard_call_completed.json"],
    "twilio retry": ["twilio_ringing.form", "twilio_completed.form", "twilio_completed.form"],
}
SCENARIO_RECORDS = {
    "twilio": {
        "status": COMPLETED, "outcome": OUTCOME_CONNECTED, "initiated_at": "2026-08-17T21:14:58Z",
        "answered_at": "2026-08-17T21:15:06Z", "ended_at": "2026-08-17T21:15:22Z", "ring_seconds": 8.0,
        "talk_seconds": 16.0, "sip_code": 200, "direction": "outbound", "to_number": "+14155552671",
        "last_sequence": 3, "last_event_at": "2026-08-17T21:15:22Z", "event_count": 4,
    },
    "unlimcall": {
        "status": COMPLETED, "outcome": OUTCOME_CONNECTED, "ring_seconds": 7.0, "talk_seconds": 196.0,
        "agent": "seat_0481ab", "did": "did_de_1092", "hangup_cause": "normal_clearing", "event_count": 3,
        "last_event_at": "2026-06-04T09:17:45Z", "last_sequence": None,
    },
    "dialercx": {
        "status": COMPLETED, "outcome": OUTCOME_SALE, "disposition": "SALE", "talk_seconds": 180.0,
        "initiated_at": "2026-03-07T15:26:50Z", "ended_at": "2026-03-07T15:30:00Z",
        "recording_url": "https://recordings.dialer.cx/acme/12345.mp3", "to_number": "5551234567",
        "last_event_at": "2026-03-07T15:31:12Z",
    },
    "standard": {
        "status": COMPLETED, "outcome": OUTCOME_CONNECTED, "ring_seconds": 10.0, "disposition": "Contact",
        "recording_url": "https://media.example-dialer.com/rec/call_7Hq2xP.wav", "event_count": 2,
    },
    "twilio retry": {"status": COMPLETED, "event_count": 3, "talk_seconds": 16.0, "last_sequence": 3},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sample_call_folds_to_expected_record(scenario):
    events = [sample(name) for name in SCENARIOS[scenario]]
    expected = SCENARIO_RECORDS[scenario]
    assert subset(fold_in_order(events), expected) == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_order_of_a_sample_call_gives_the_same_record(scenario):
    events = [sample(name) for name in SCENARIOS[scenario]]
    reference = fold_in_order(events)
    for order in itertools.permutations(events):
        assert fold_in_order(order) == reference
        assert fold_events("src", order) == reference


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_permutation_of_a_call_gives_the_same_record(data):
    names = data.draw(st.sampled_from(sorted(SCENARIOS)).map(SCENARIOS.get))
    events = [sample(name) for name in names]
    shuffled = data.draw(st.permutations(events))
    assert fold_in_order(shuffled) == fold_in_order(events)


@pytest.mark.parametrize(("name", "outcome"), [
    ("twilio_completed_machine.form", OUTCOME_VOICEMAIL),
    ("twilio_inbound_canceled.form", OUTCOME_ABANDONED),
    ("twilio_no_answer.form", OUTCOME_NO_ANSWER),
    ("twilio_busy.form", OUTCOME_BUSY),
    ("twilio_completed.json", OUTCOME_CONNECTED),
    ("unlimcall_call_failed_busy.json", OUTCOME_BUSY),
    ("unlimcall_call_completed_no_answer.json", OUTCOME_NO_ANSWER),
    ("unlimcall_voicemail_detected.json", OUTCOME_VOICEMAIL),
    ("dialercx_call_ended_no_answer.json", OUTCOME_NO_ANSWER),
    ("standard_call_no_answer.json", OUTCOME_NO_ANSWER),
    ("twilio_ringing.form", None),
])
def test_single_sample_outcome(name, outcome):
    assert fold(None, "src", sample(name)).outcome == outcome


def test_completed_event_arriving_first_creates_the_full_record():
    completed = sample("unlimcall_call_completed.json")
    expected = {
        "source": "unlimcall", "call_id": completed.call_id, "status": COMPLETED, "outcome": OUTCOME_CONNECTED,
        "direction": "outbound", "from_number": "+12025551234", "to_number": "+4930123456789",
        "initiated_at": "2026-06-04T09:14:22Z", "answered_at": "2026-06-04T09:14:29Z",
        "ended_at": "2026-06-04T09:17:45Z", "ring_seconds": 7.0, "talk_seconds": 196.0, "agent": "seat_0481ab",
        "did": "did_de_1092", "hangup_cause": "normal_clearing", "event_count": 1,
        "last_event_at": "2026-06-04T09:17:45Z",
    }
    record = fold(None, "unlimcall", completed)
    assert subset(record, expected) == expected
    late = [sample("unlimcall_call_answered.json"), sample("unlimcall_call_initiated.json")]
    after = fold_in_order([completed, *late], source="unlimcall")
    assert {**after.to_dict(), "event_count": 1} == record.to_dict()


# --- status ---------------------------------------------------------------------

STATUS_MERGES = [
    (None, RINGING, RINGING),
    (BUSY, None, BUSY),
    (QUEUED, INITIATED, INITIATED),
    (ANSWERED, RINGING, ANSWERED),
    (RINGING, COMPLETED, COMPLETED),
    (COMPLETED, RINGING, COMPLETED),
    (COMPLETED, ANSWERED, COMPLETED),
    (COMPLETED, VOICEMAIL, VOICEMAIL),
    (BUSY, COMPLETED, BUSY),
    (NO_ANSWER, COMPLETED, NO_ANSWER),
    (FAILED, COMPLETED, FAILED),
    (CANCELED, COMPLETED, CANCELED),
    (NO_ANSWER, BUSY, BUSY),
    (FAILED, NO_ANSWER, NO_ANSWER),
    (VOICEMAIL, BUSY, VOICEMAIL),
]


@pytest.mark.parametrize(("current", "new", "expected"), STATUS_MERGES)
def test_merge_status(current, new, expected):
    assert merge_status(current, new) == expected
    assert merge_status(new, current) == expected


@pytest.mark.parametrize(("a", "b"), itertools.product(ALL_STATUSES, repeat=2))
def test_merge_status_is_commutative_and_terminal_wins(a, b):
    merged = merge_status(a, b)
    assert merged == merge_status(b, a) and merged in (a, b)
    if a in TERMINAL_STATUSES or b in TERMINAL_STATUSES:
        assert merged in TERMINAL_STATUSES


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
@pytest.mark.parametrize("late", [QUEUED, INITIATED, RINGING, ANSWERED])
def test_late_non_terminal_event_never_replaces_a_terminal_status(terminal, late):
    done = ev("done", status=terminal, sequence=3, occurred_at=stamp(30))
    straggler = ev("late", status=late, sequence=9, occurred_at=stamp(90))
    assert fold(fold(None, "src", done), "src", straggler).status == terminal


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_terminal_status_survives_every_order(data):
    statuses = data.draw(st.lists(st.sampled_from(ALL_STATUSES), min_size=1, max_size=6))
    events = [ev(f"e{i}", status=s, sequence=i, occurred_at=stamp(i)) for i, s in enumerate(statuses)]
    record = fold_in_order(data.draw(st.permutations(events)))
    assert record.status == reduce(merge_status, statuses)
    assert record.is_terminal == any(s in TERMINAL_STATUSES for s in statuses)


# --- scalar fields --------------------------------------------------------------

SCALAR_MERGES = [
    ("newer sequence overwrites",
     [dict(sequence=1, disposition="NA"), dict(sequence=2, disposition="SALE")], {"disposition": "SALE"}),
    ("older event only fills blanks",
     [dict(sequence=2, campaign="A"), dict(sequence=1, campaign="B", agent="ann")], {"campaign": "A", "agent": "ann"}),
    ("None never overwrites",
     [dict(sequence=1, agent="ann"), dict(sequence=2, agent=None)], {"agent": "ann"}),
    ("later occurred_at wins without sequences",
     [dict(occurred_at=stamp(1), campaign="A"), dict(occurred_at=stamp(2), campaign="B")], {"campaign": "B"}),
    ("sequence beats clock",
     [dict(sequence=2, occurred_at=stamp(1), campaign="A"), dict(sequence=1, occurred_at=stamp(9), campaign="B")],
     {"campaign": "A"}),
    ("unordered events: fixed value order",
     [dict(campaign="A"), dict(campaign="B")], {"campaign": "B"}),
    ("every scalar is carried",
     [dict(direction="inbound", from_number="+1", to_number="+2", did="d", sip_code=486, hangup_cause="user_busy",
           answered_by="human", recording_url="u", ended_at=stamp(5)), dict(talk_seconds=0.0)],
     {"direction": "inbound", "from_number": "+1", "to_number": "+2", "did": "d", "sip_code": 486,
      "hangup_cause": "user_busy", "answered_by": "human", "recording_url": "u", "ended_at": stamp(5),
      "talk_seconds": 0.0}),
    ("ring seconds from initiated/answered in separate events",
     [dict(initiated_at=stamp(0)), dict(answered_at=stamp(8), ring_seconds=99.0)], {"ring_seconds": 8.0}),
    ("ring seconds from the event when times are missing",
     [dict(ring_seconds=12.0), dict(initiated_at=stamp(0))], {"ring_seconds": 12.0}),
    ("counters",
     [dict(sequence=4, occurred_at=stamp(4)), dict(sequence=7, occurred_at=stamp(2)), dict()],
     {"event_count": 3, "last_sequence": 7, "last_event_at": stamp(4)}),
]


@pytest.mark.parametrize(("events", "expected"), [m[1:] for m in SCALAR_MERGES], ids=[m[0] for m in SCALAR_MERGES])
def test_scalar_merge(events, expected):
    built = [ev(f"e{i}", **values) for i, values in enumerate(events)]
    for order in itertools.permutations(built):
        assert subset(fold_in_order(order), expected) == expected


def test_fold_events_is_exact_where_incremental_fold_cannot_be():
    older = ev("a", occurred_at=stamp(1), disposition="NA")
    newer = ev("b", occurred_at=stamp(2), disposition="SALE")
    newest = ev("c", occurred_at=stamp(3), recording_url="u")
    for order in itertools.permutations([older, newer, newest]):
        assert fold_events("src", order).disposition == "SALE"


PHONES = st.sampled_from(["+14155550100", "+14155552671", "5551234567"])
FACT_VALUES = {
    "direction": st.sampled_from(["inbound", "outbound"]),
    "from_number": PHONES,
    "to_number": PHONES,
    "initiated_at": st.just(stamp(0)),
    "answered_at": st.just(stamp(7)),
    "ended_at": st.just(stamp(60)),
    "talk_seconds": st.floats(0, 600, allow_nan=False),
    "disposition": st.sampled_from(["SALE", "NA", "Connected-RPC", "VM", "B", "XYZ"]),
    "hangup_cause": st.sampled_from(["normal_clearing", "user_busy"]),
    "sip_code": st.sampled_from([200, 486, 480]),
    "agent": st.text(min_size=1, max_size=5),
    "campaign": st.text(min_size=1, max_size=5),
    "recording_url": st.just("https://example.com/r.wav"),
    "answered_by": st.sampled_from(["human", "machine_start"]),
}


@st.composite
def call_events(draw, consistent: bool):
    """Events of one call; with ``consistent`` every event reports the same value for a field."""
    facts = draw(st.fixed_dictionaries(FACT_VALUES))
    count = draw(st.integers(1, 6))
    sequenced = draw(st.booleans())
    events = []
    for index in range(count):
        carried = draw(st.sets(st.sampled_from(sorted(FACT_VALUES))))
        values = {name: facts[name] if consistent else draw(FACT_VALUES[name]) for name in carried}
        events.append(ev(
            f"e{index}",
            status=draw(st.none() | st.sampled_from(ALL_STATUSES)),
            sequence=index if sequenced else None,
            occurred_at=draw(st.none() | st.integers(0, 120).map(stamp)),
            **values,
        ))
    return events


@settings(max_examples=200, deadline=None)
@given(events=call_events(consistent=True), data=st.data())
def test_fold_is_order_independent_when_events_agree_on_facts(events, data):
    assert fold_in_order(data.draw(st.permutations(events))) == fold_in_order(events)


@settings(max_examples=200, deadline=None)
@given(events=call_events(consistent=False), data=st.data())
def test_fold_events_is_order_independent_for_any_events(events, data):
    assert fold_events("src", data.draw(st.permutations(events))) == fold_events("src", events)


@settings(max_examples=100, deadline=None)
@given(events=call_events(consistent=False))
def test_outcome_is_always_derived_after_a_fold(events):
    record = fold_in_order(events)
    assert record.outcome == derive_outcome(record)
    assert (record.outcome is None) == (record.status not in TERMINAL_STATUSES)


# --- guards ---------------------------------------------------------------------

def test_fold_returns_a_new_record():
    first = fold(None, "src", ev("a", status=RINGING, agent="ann"))
    before = first.to_dict()
    fold(first, "src", ev("b", status=COMPLETED, agent="bob", sequence=5))
    assert first.to_dict() == before


@pytest.mark.parametrize(("record", "event", "message"), [
    (None, ev("x", event_type="agent.login", call_id=None, is_call_event=False), "non-call event"),
    (None, ev("x", call_id=None), "non-call event"),
    (CallRecord(source="src", call_id="other"), ev("x"), "folded into"),
    (CallRecord(source="elsewhere", call_id="c1"), ev("x"), "folded into"),
])
def test_fold_rejects_events_of_another_call(record, event, message):
    with pytest.raises(ValueError, match=message):
        fold(record, "src", event)


def test_fold_events_needs_events():
    with pytest.raises(ValueError):
        fold_events("src", [])


# --- derive_outcome -------------------------------------------------------------

OUTCOMES = [
    (dict(status=None), None),
    (dict(status=ANSWERED, talk_seconds=30.0), None),
    (dict(status=RINGING, disposition="SALE"), None),
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_SALE) for label in ("SALE", "sold", "Closed Won")],
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_CONNECTED)
      for label in ("Connected-RPC", "CONNECTED", "ANSWERED", "HUMAN", "Contact", "NI", "DNC", "CALLBK")],
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_NO_ANSWER) for label in ("NA", "NOANSWER", "No Answer")],
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_BUSY) for label in ("B", "BUSY", "busy")],
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_VOICEMAIL)
      for label in ("AA", "AM", "VM", "Voicemail", "Answering Machine")],
    *[(dict(status=COMPLETED, disposition=label), OUTCOME_ABANDONED)
      for label in ("DROP", "ABANDON", "ABANDONED", "Abandoned")],
    (dict(status=COMPLETED, disposition=" connected_rpc "), OUTCOME_CONNECTED),
    (dict(status=BUSY, disposition="SALE"), OUTCOME_SALE),
    (dict(status=COMPLETED, disposition="SALE", answered_by="machine_start"), OUTCOME_SALE),
    (dict(status=COMPLETED, disposition="XYZ", talk_seconds=30.0), OUTCOME_CONNECTED),
    (dict(status=COMPLETED, answered_by="machine_end_beep", talk_seconds=20.0), OUTCOME_VOICEMAIL),
    (dict(status=COMPLETED, answered_by="human", talk_seconds=20.0), OUTCOME_CONNECTED),
    (dict(status=VOICEMAIL), OUTCOME_VOICEMAIL),
    (dict(status=BUSY), OUTCOME_BUSY),
    (dict(status=NO_ANSWER), OUTCOME_NO_ANSWER),
    (dict(status=FAILED), OUTCOME_FAILED),
    (dict(status=CANCELED, direction="outbound"), OUTCOME_CANCELED),
    (dict(status=CANCELED), OUTCOME_CANCELED),
    (dict(status=CANCELED, direction="inbound"), OUTCOME_ABANDONED),
    (dict(status=CANCELED, direction="inbound", answered_at=stamp(5)), OUTCOME_CANCELED),
    (dict(status=COMPLETED, talk_seconds=5.0), OUTCOME_CONNECTED),
    (dict(status=COMPLETED, answered_at=stamp(5)), OUTCOME_CONNECTED),
    (dict(status=COMPLETED, talk_seconds=0.0), OUTCOME_NO_ANSWER),
    (dict(status=COMPLETED), OUTCOME_NO_ANSWER),
]


@pytest.mark.parametrize(("values", "outcome"), OUTCOMES, ids=[f"{v}->{o}" for v, o in OUTCOMES])
def test_derive_outcome(values, outcome):
    assert derive_outcome(CallRecord(source="src", call_id="c1", **values)) == outcome


@pytest.mark.parametrize("flags", [(False, False, False), (True, False, False), (False, False, True), (True, True, True)])
def test_a_call_is_a_test_call_when_any_of_its_events_is_a_test(flags):
    events = [CallEvent("unlimcall", kind, f"k{i}", call_id="c", status=status, test=flag)
              for i, ((kind, status), flag) in enumerate(zip(
                  [("call.initiated", INITIATED), ("call.answered", ANSWERED), ("call.completed", COMPLETED)], flags))]
    for order in itertools.permutations(events):
        record = reduce(lambda r, e: fold(r, "s", e), order, None)
        assert record.test is any(flags)
        assert fold_events("s", order).test is any(flags)
    assert CallEvent.from_dict(events[0].to_dict()).test is flags[0]
    assert CallRecord.from_dict(record.to_dict()).test is any(flags)
