"""The platform kinds' payloads (vendor documentation samples, tests/samples/README.md) normalized
and folded: Telnyx, Retell, Vapi, GoHighLevel, CloudEvents (built with the cloudevents SDK) and
generic mappings; the new call-record fields fold order-independently; the GHL note shows them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.calls import fold_events
from connector.formats import normalize
from connector.formats.generic import compile_mapping
from connector.model import ANSWERED, BUSY, COMPLETED, NO_ANSWER, VOICEMAIL, CallRecord, PayloadError
from connector.sync.rules import note_body
from tests.sender_signing import cloudevent_batch, cloudevent_requests

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}
LEG = "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"
RETELL = "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"
VAPI = "3c4c9f5e-7b1d-4b7e-9d7a-0f6c2a1e5b21"
MAPPING = compile_mapping(
    {"call_id": "call.ref", "event": "evt.kind", "event_id": "evt.id", "occurred_at": "evt.at",
     "from": "call.legs.0.number", "to": "call.legs.1.number", "status": "call.result",
     "duration": "call.seconds", "agent": "user.name", "campaign": "list"},
    {"no-answer": "no_answer", "won": "sale"},
)


def load(name: str, kind: str, content_type: str | None = None):
    path = SAMPLES / name
    media = content_type or TYPES[path.suffix]
    return normalize(path.read_bytes(), media, {}, format_hint=kind, mapping=MAPPING)


EXPECTATIONS = [
    ("telnyx_call_hangup.json", "telnyx", {
        "event_type": "call.hangup", "call_id": LEG, "status": BUSY, "hangup_cause": "call_rejected",
        "sip_code": 603, "quality_score": 4.5, "initiated_at": "2018-02-02T22:20:27.521Z",
        "dedupe_key": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0:call.hangup"}),
    ("telnyx_call_recording_saved.json", "telnyx", {
        "event_type": "call.recording.saved", "call_id": LEG, "status": None,
        "recording_url": "http://example.com/recording.mp3"}),
    ("telnyx_call_machine_greeting_ended.json", "telnyx", {"call_id": LEG, "status": None, "answered_by": None}),
    ("telnyx_texml_initiated.form", "telnyx", {
        "event_type": "texml.initiated", "call_id": "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ",
        "status": "initiated", "sequence": 0, "format": "telnyx"}),
    ("telnyx_texml_answered.form", "telnyx", {"event_type": "texml.in-progress", "status": ANSWERED, "sequence": 2}),
    ("telnyx_texml_amd.form", "telnyx", {"event_type": "texml.amd", "answered_by": "human", "status": None}),
    ("telnyx_texml_completed.form", "telnyx", {"event_type": "texml.completed", "status": COMPLETED,
                                               "talk_seconds": 2.0, "from_number": "+18445931290"}),
    ("retell_call_started.json", "retell", {"event_type": "call_started", "call_id": RETELL, "status": ANSWERED,
                                            "answered_at": "2024-05-02T00:07:55.945Z", "direction": "inbound"}),
    ("retell_call_ended.json", "retell", {
        "event_type": "call_ended", "status": COMPLETED, "talk_seconds": 15.791, "from_number": "+12137771234",
        "dedupe_key": f"{RETELL}:call_ended"}),
    ("retell_call_analyzed.json", "retell", {
        "event_type": "call_analyzed", "cost": 0.7, "currency": "USD", "talk_seconds": 10.0,
        "summary": "The agent called the user to ask question about his purchase inquiry. The agent asked several "
                   "questions regarding his preference and asked if user would like to book an appointment. The "
                   "user happily agreed and scheduled an appointment next Monday 10am.",
        "analysis": "sentiment: Positive; successful: yes; in voicemail: no",
        "recording_url": f"https://retellai.s3.us-west-2.amazonaws.com/{RETELL}/recording.wav"}),
    ("vapi_status_update.json", "vapi", {"event_type": "status-update", "call_id": VAPI, "status": ANSWERED,
                                         "dedupe_key": f"{VAPI}:status-update:in-progress"}),
    ("vapi_end_of_call_report.json", "vapi", {
        "status": COMPLETED, "cost": 0.1123, "currency": "USD", "quality_score": 8.0, "direction": "outbound",
        "from_number": "+14155550123", "to_number": "+14155550199", "talk_seconds": 103.333,
        "transcript": "AI: How can I help? User: What's the weather? ...",
        "summary": "The user picked up the phone then asked about the weather.",
        "recording_url": "https://storage.vapi.ai/3c4c9f5e-mono.wav", "dedupe_key": f"{VAPI}:end-of-call-report"}),
    ("vapi_end_of_call_report_busy.json", "vapi", {"status": BUSY, "hangup_cause": "customer-busy"}),
    ("ghl_outbound_message_call.json", "ghl", {
        "event_type": "OutboundMessage", "call_id": "tyW42xCD0HQpb3hhfLcx", "status": COMPLETED,
        "talk_seconds": 120.0, "direction": "outbound", "recording_url": None}),  # "call recording url": a placeholder
    ("ghl_inbound_message_voicemail.json", "ghl", {"call_id": "QkNS0DNje0FjoLQdD5O3", "status": VOICEMAIL}),
    ("ghl_inbound_message_sms.json", "ghl", {"is_call_event": False, "call_id": None}),
    ("ghl_external_auth_connected.json", "ghl", {"is_call_event": False,
                                                 "dedupe_key": "3b12bbc1-0be0-4678-aa76-771e88d27423"}),
    ("cloudevents_spec_example.json", "cloudevents", {
        "event_type": "com.example.someevent", "is_call_event": False,
        "dedupe_key": '["/mycontext", "A234-1234-1234"]', "occurred_at": "2018-04-05T17:31:00Z"}),
    ("cloudevents_call_completed.json", "cloudevents", {
        "call_id": "call-5521", "status": COMPLETED, "disposition": "SALE", "talk_seconds": 196.0}),
    ("generic_crm_dialer.json", "generic", {
        "event_type": "dial.finished", "call_id": "CR-88121", "status": NO_ANSWER, "sender_outcome": "no_answer",
        "from_number": "+12025551234", "to_number": "+4930123456789", "agent": "maria", "campaign": "Q3-Renewals",
        "dedupe_key": "9f2c61d0"}),
]


@pytest.mark.parametrize("name, kind, expected", EXPECTATIONS, ids=[e[0] for e in EXPECTATIONS])
def test_vendor_samples_normalize(name, kind, expected):
    content_type = "application/cloudevents+json" if kind == "cloudevents" else None
    [event] = load(name, kind, content_type)
    actual = event.to_dict()
    assert {key: actual[key] for key in expected} == expected


def record(events) -> CallRecord:
    return fold_events("s", events)


def test_telnyx_hangup_and_recording_are_one_rejected_call_with_its_recording():
    call = record([*load("telnyx_call_hangup.json", "telnyx"), *load("telnyx_call_recording_saved.json", "telnyx")])
    assert (call.status, call.outcome, call.sip_code, call.quality_score) == (BUSY, "busy", 603, 4.5)
    assert call.recording_url == "http://example.com/recording.mp3"


def test_retell_events_build_one_call_with_transcript_summary_cost_and_analysis():
    events = [*load("retell_call_started.json", "retell"), *load("retell_call_ended.json", "retell"),
              *load("retell_call_analyzed.json", "retell")]
    call = record(events)
    assert (call.status, call.outcome, call.cost, call.currency) == (COMPLETED, "connected", 0.7, "USD")
    assert call.summary.startswith("The agent called the user") and "sentiment: Positive" in call.analysis
    assert call.recording_url.endswith("/recording.wav") and call.from_number == "+12137771234"


def test_vapi_report_and_status_build_a_connected_call():
    call = record([*load("vapi_end_of_call_report.json", "vapi"), *load("vapi_status_update.json", "vapi")])
    assert (call.status, call.outcome, call.quality_score, call.phone) == (COMPLETED, "connected", 8.0, "+14155550199")
    assert record(load("vapi_end_of_call_report_busy.json", "vapi")).outcome == "busy"


def test_ghl_call_messages_become_calls():
    assert record(load("ghl_outbound_message_call.json", "ghl")).outcome == "connected"
    assert record(load("ghl_inbound_message_voicemail.json", "ghl")).outcome == "voicemail"


# -- CloudEvents: the SDK's three modes are one event ---------------------------------------

ATTRS = {"type": "com.example.dialer.call.no_answer", "source": "/dialer", "id": "e-1", "subject": "call-7",
         "datacontenttype": "application/json"}
DATA = {"from": "+12025551234", "to": "+4930123456789", "direction": "outbound"}


def test_cloudevents_structured_binary_and_batch_are_the_same_event():
    modes = cloudevent_requests(ATTRS, DATA)
    found = []
    for headers, body in modes.values():
        [event] = normalize(body, headers["content-type"], headers, format_hint="cloudevents")
        found.append(event)
    headers, body = cloudevent_batch([(ATTRS, DATA), ({**ATTRS, "id": "e-2", "subject": "call-8"}, DATA)])
    batch = normalize(body, headers["Content-Type"], headers, format_hint="cloudevents")
    assert [e.call_id for e in batch] == ["call-7", "call-8"]
    for event in [*found, batch[0]]:
        assert (event.call_id, event.status, event.dedupe_key) == ("call-7", NO_ANSWER, '["/dialer", "e-1"]')
        assert event.to_number == "+4930123456789"


@pytest.mark.parametrize(
    "attrs, data, call_id",
    [
        ({"subject": "from-subject"}, {"call_id": "from-data", "call": {"id": "nested"}}, "from-subject"),
        ({}, {"call_id": "from-data", "call": {"id": "nested"}}, "from-data"),
        ({}, {"call": {"id": "nested", "status": "busy"}}, "nested"),
        ({}, {"other": 1}, None),
    ],
)
def test_cloudevents_call_id_precedence(attrs, data, call_id):
    base = {"specversion": "1.0", "type": "com.example.note", "source": "/s", "id": "1"}
    [event] = normalize(json.dumps({**base, **attrs, "data": data}).encode(), "application/cloudevents+json", {},
                        format_hint="cloudevents")
    assert event.call_id == call_id and event.is_call_event == bool(call_id)


@pytest.mark.parametrize(
    "body, content_type, headers, message",
    [
        ({"specversion": "1.0", "type": "t", "source": "/s"}, "application/cloudevents+json", {}, "lacks required"),
        ({"specversion": "0.3", "type": "t", "source": "/s", "id": "1"}, "application/cloudevents+json", {}, "not 1.0"),
        ({"a": 1}, "application/cloudevents-batch+json", {}, "must be a JSON array"),
        ([{"a": 1}], "application/cloudevents+json", {}, "carries one event"),
        ({"a": 1}, "application/json", {}, "no ce-\\* headers"),
        ({"a": 1}, "application/json", {"ce-id": "1", "ce-source": "/s", "ce-type": "t"}, "lacks required"),
        ([1], "application/cloudevents-batch+json", {}, "JSON array item 0 is a number"),
    ],
)
def test_cloudevents_refusals(body, content_type, headers, message):
    with pytest.raises(PayloadError, match=message):
        normalize(json.dumps(body).encode(), content_type, headers, format_hint="cloudevents")


# -- generic mappings ------------------------------------------------------------------------

def generic(payload: dict, fields=None, status_map=None):
    mapping = compile_mapping(fields or {"call_id": "id", "event": "kind", "status": "state"}, status_map or {})
    return normalize(json.dumps(payload).encode(), "application/json", {}, format_hint="generic", mapping=mapping)


def test_status_map_declares_the_outcome_even_without_talk_time():
    [event] = generic({"id": "c1", "kind": "done", "state": "WON"}, status_map={"won": "sale"})  # case-insensitive
    assert (event.status, event.sender_outcome) == (COMPLETED, "sale")
    assert record([event]).outcome == "sale"


def test_unmapped_status_values_use_the_built_in_words_and_the_type_is_a_fallback():
    [event] = generic({"id": "c1", "kind": "x", "state": "in-progress"})
    assert (event.status, event.sender_outcome) == (ANSWERED, None)
    [event] = generic({"id": "c1", "kind": "call.busy"})
    assert event.status == BUSY


def test_generic_dedupe_tells_status_updates_apart_without_an_event_id():
    keys = {generic({"id": "c1", "kind": "update", "state": s})[0].dedupe_key for s in ("ringing", "completed")}
    assert keys == {"c1:update:ringing", "c1:update:completed"}


def test_generic_without_an_event_type_names_the_path():
    with pytest.raises(PayloadError, match="no event type at 'kind'"):
        generic({"id": "c1"})


def test_generic_list_index_paths():
    [event] = generic({"c": [{"id": "a"}, {"id": "b"}], "k": "x"}, fields={"call_id": "c.1.id", "event": "k"})
    assert event.call_id == "b"


# -- new event types and fields in any format ----------------------------------------------

def test_detail_event_types_need_a_call_id_and_carry_their_fields():
    [event] = normalize(json.dumps({"type": "transcript.available", "data": {
        "call_id": "c1", "transcript": "https://t.example.com/c1.txt", "summary": "ok"}}).encode(),
        "application/json", {}, format_hint="standard")
    assert (event.call_id, event.transcript_url, event.transcript, event.summary) == (
        "c1", "https://t.example.com/c1.txt", None, "ok")
    with pytest.raises(PayloadError, match="call event without a call id"):
        normalize(json.dumps({"type": "cost.calculated", "data": {"cost": 1}}).encode(), "application/json", {},
                  format_hint="standard")


details = st.fixed_dictionaries({}, optional={
    "summary": st.sampled_from(["a", "b"]), "cost": st.sampled_from([0.1, 0.2]), "currency": st.just("USD"),
    "quality_score": st.sampled_from([3.0, 4.5]), "transcript": st.sampled_from(["x", "y"]),
    "sender_outcome": st.sampled_from(["sale", "connected"]), "analysis": st.just("sentiment: Positive"),
    "occurred_at": st.sampled_from(["2026-06-04T09:00:00Z", "2026-06-04T09:05:00Z", None]),
    "sequence": st.sampled_from([1, 2, None]), "status": st.sampled_from([None, "completed", "answered"]),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(details, min_size=1, max_size=5))
def test_new_fields_fold_the_same_in_every_order(events):
    from connector.model import CallEvent

    items = [CallEvent(format="t", event_type="e", dedupe_key=f"k{n}", call_id="c1", **values)
             for n, values in enumerate(events)]
    expected = fold_events("s", items)
    for order in itertools.islice(itertools.permutations(items), 24):
        assert fold_events("s", list(order)) == expected
    holders = [e for e in items if e.summary is not None]
    if len(holders) == 1:
        assert expected.summary == holders[0].summary  # a value only one event has always reaches the record


def test_note_shows_summary_and_transcript_link_when_present():
    call = CallRecord(source="s", call_id="c1", outcome="connected", summary="Booked a demo",
                      transcript_url="https://t.example.com/c1", recording_url="https://r.example.com/c1.mp3")
    body = note_body(call, "[callsync s/c1]")
    assert "Summary: Booked a demo" in body and "Transcript: https://t.example.com/c1" in body
    assert "Recording: https://r.example.com/c1.mp3" in body
    plain = note_body(CallRecord(source="s", call_id="c1", outcome="connected"), "[callsync s/c1]")
    assert "Summary" not in plain and "Transcript" not in plain
