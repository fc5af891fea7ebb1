"""Payload normalizers: sample payloads, detection, dedupe keys, errors, unknown types."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from connector.formats import detect_format, normalize
from connector.formats.fields import status_word, to_int, to_iso, to_seconds
from connector.formats.storable import safe_value, storable
from connector.model import (
    ANSWERED,
    BUSY,
    CANCELED,
    COMPLETED,
    FAILED,
    INITIATED,
    NO_ANSWER,
    QUEUED,
    RINGING,
    VOICEMAIL,
    PayloadError,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

UNLIM_ID = "a3f7c291-4b8e-4d2a-9c1f-08d7b3e4f6a2"
TWILIO_ID = "CAa1b2c3d4e5f60718293a4b5c6d7e8f90"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def load(name: str, headers: dict[str, str] | None = None, hint: str = "auto"):
    path = SAMPLES / name
    return normalize(path.read_bytes(), CONTENT_TYPES[path.suffix], headers or {}, format_hint=hint)


def post(obj, headers=None, hint="auto", content_type=JSON):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return normalize(body, content_type, headers or {}, format_hint=hint)


def sha(name: str) -> str:
    return "sha256:" + hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()


# --- every sample file -> expected fields -------------------------------------

SAMPLE_EXPECTATIONS = [
    ("unlimcall_call_initiated.json", {
        "format": "unlimcall", "event_type": "call.initiated", "call_id": UNLIM_ID, "status": INITIATED,
        "occurred_at": "2026-06-04T09:14:22Z", "initiated_at": "2026-06-04T09:14:22Z",
        "direction": "outbound", "from_number": "+12025551234", "to_number": "+4930123456789",
        "agent": "seat_0481ab", "did": "did_de_1092", "dedupe_key": f"{UNLIM_ID}:call.initiated",
    }),
    ("unlimcall_call_answered.json", {
        "status": ANSWERED, "answered_at": "2026-06-04T09:14:29Z", "occurred_at": "2026-06-04T09:14:29Z",
        "ring_seconds": 7.0, "talk_seconds": None,
    }),
    ("unlimcall_call_completed.json", {
        "format": "unlimcall", "event_type": "call.completed", "call_id": UNLIM_ID, "is_call_event": True,
        "status": COMPLETED, "occurred_at": "2026-06-04T09:17:45Z", "initiated_at": "2026-06-04T09:14:22Z",
        "answered_at": "2026-06-04T09:14:29Z", "ended_at": "2026-06-04T09:17:45Z", "talk_seconds": 196.0,
        "ring_seconds": 7.0, "hangup_cause": "normal_clearing", "sip_code": None, "agent": "seat_0481ab",
        "did": "did_de_1092", "extra": {"hangup_cause_code": 16}, "dedupe_key": f"{UNLIM_ID}:call.completed",
    }),
    ("unlimcall_call_failed_busy.json", {
        "event_type": "call.failed", "status": BUSY, "sip_code": 486, "hangup_cause": "user_busy",
        "talk_seconds": 0.0, "ring_seconds": 3.0, "ended_at": "2026-06-04T09:20:04Z",
    }),
    ("unlimcall_call_completed_no_answer.json", {
        "event_type": "call.completed", "status": NO_ANSWER, "ring_seconds": 30.0, "campaign": "de-renewals",
        "answered_at": None,
    }),
    ("unlimcall_voicemail_detected.json", {
        "event_type": "call.voicemail.detected", "status": VOICEMAIL, "occurred_at": "2026-06-04T09:30:12Z",
        "ended_at": None, "ring_seconds": 9.0,
    }),
    ("dialercx_call_started.json", {
        "format": "dialercx", "event_type": "call.started", "call_id": "12345", "status": INITIATED,
        "initiated_at": "2026-03-07T15:26:50Z", "occurred_at": "2026-03-07T15:26:50Z", "direction": "outbound",
        "to_number": "5551234567", "from_number": None, "agent": "jsmith", "campaign": "Q1-Sales",
    }),
    ("dialercx_call_ended.json", {
        "format": "dialercx", "event_type": "call.ended", "call_id": "12345", "status": COMPLETED,
        "occurred_at": "2026-03-07T15:30:00Z", "ended_at": "2026-03-07T15:30:00Z", "talk_seconds": 180.0,
        "disposition": "SALE", "to_number": "5551234567", "direction": "outbound", "agent": "jsmith",
        "campaign": "Q1-Sales", "dedupe_key": "12345:call.ended",
    }),
    ("dialercx_call_ended_no_answer.json", {
        "call_id": "12346", "status": NO_ANSWER, "disposition": "NA", "talk_seconds": 0.0,
    }),
    ("dialercx_recording_ready.json", {
        "event_type": "recording.ready", "call_id": "12345", "is_call_event": True, "status": None,
        "recording_url": "https://recordings.dialer.cx/acme/12345.mp3", "talk_seconds": None,
        "extra": {"recording_seconds": 180.0},
    }),
    ("dialercx_agent_login.json", {
        "event_type": "agent.login", "call_id": None, "is_call_event": False, "status": None, "agent": "jsmith",
        "occurred_at": "2026-03-07T08:58:03Z", "dedupe_key": sha("dialercx_agent_login.json"),
    }),
    ("dialercx_lead_updated.json", {
        "event_type": "lead.updated", "call_id": None, "is_call_event": False,
        "dedupe_key": sha("dialercx_lead_updated.json"),
    }),
    ("twilio_initiated.form", {
        "format": "twilio", "event_type": "twilio.initiated", "call_id": TWILIO_ID, "status": INITIATED,
        "sequence": 0, "initiated_at": "2026-08-17T21:14:58Z", "direction": "outbound",
        "from_number": "+15005550006", "to_number": "+14155552671",
    }),
    ("twilio_ringing.form", {
        "event_type": "twilio.ringing", "status": RINGING, "sequence": 1, "occurred_at": "2026-08-17T21:14:59Z",
        "initiated_at": None, "answered_at": None,
    }),
    ("twilio_in_progress.form", {
        "event_type": "twilio.in-progress", "status": ANSWERED, "sequence": 2,
        "answered_at": "2026-08-17T21:15:06Z",
    }),
    ("twilio_completed.form", {
        "format": "twilio", "event_type": "twilio.completed", "call_id": TWILIO_ID, "status": COMPLETED,
        "sequence": 3, "occurred_at": "2026-08-17T21:15:22Z", "ended_at": "2026-08-17T21:15:22Z",
        "talk_seconds": 16.0, "sip_code": 200, "direction": "outbound", "from_number": "+15005550006",
        "to_number": "+14155552671", "dedupe_key": f"{TWILIO_ID}:completed:3",
        "extra": {"AccountSid": ACCOUNT, "CallbackSource": "call-progress-events", "ApiVersion": "2010-04-01"},
    }),
    ("twilio_no_answer.form", {"event_type": "twilio.no-answer", "status": NO_ANSWER, "sip_code": 487}),
    ("twilio_busy.form", {"event_type": "twilio.busy", "status": BUSY, "sip_code": 486}),
    ("twilio_completed_machine.form", {
        "status": COMPLETED, "answered_by": "machine_end_beep", "talk_seconds": 23.0,
    }),
    ("twilio_inbound_canceled.form", {
        "status": CANCELED, "direction": "inbound", "from_number": "+14155550177", "to_number": "+15005550006",
    }),
    ("twilio_completed.json", {
        "format": "twilio", "status": COMPLETED, "talk_seconds": 74.0, "sequence": 3,
        "recording_url": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/"
        "RE0123456789abcdef0123456789abcdef",
    }),
    ("standard_call_ringing.json", {
        "format": "standard", "event_type": "call.ringing", "call_id": "call_7Hq2xP", "status": RINGING,
        "occurred_at": "2026-08-17T10:02:03Z", "agent": "maria", "campaign": "renewals",
        "dedupe_key": "call_7Hq2xP:call.ringing",
    }),
    ("standard_call_completed.json", {
        "format": "standard", "event_type": "call.completed", "status": COMPLETED, "talk_seconds": 160.0,
        "ring_seconds": 10.0, "disposition": "Contact", "from_number": "+14155550100",
        "recording_url": "https://media.example-dialer.com/rec/call_7Hq2xP.wav",
    }),
    ("standard_call_no_answer.json", {
        "event_type": "call.no_answer", "call_id": "call_9Kd4mR", "status": NO_ANSWER, "sip_code": 480,
        "ended_at": "2026-08-17T10:06:30Z", "ring_seconds": 30.0,
    }),
    ("standard_agent_logout.json", {
        "event_type": "agent.logout", "is_call_event": False, "call_id": None, "agent": "maria",
    }),
]


@pytest.mark.parametrize(("name", "expected"), SAMPLE_EXPECTATIONS, ids=[n for n, _ in SAMPLE_EXPECTATIONS])
def test_sample_normalizes_to_expected_event(name, expected):
    [event] = load(name)
    actual = event.to_dict()
    assert {key: actual[key] for key in expected} == expected


def test_every_sample_file_has_expectations():
    files = {p.name for p in SAMPLES.iterdir() if p.suffix in CONTENT_TYPES}
    assert {name for name, _ in SAMPLE_EXPECTATIONS} <= files
    assert len(files) >= 8


def test_non_call_events_keep_their_data():
    [event] = load("dialercx_agent_login.json")
    assert event.extra["data"]["agent_name"] == "Jane Smith"


# --- format detection -----------------------------------------------------------

DETECTION = [
    ("form body", {"From": "+1555"}, {}, True, "twilio"),
    ("json with CallSid", {"CallSid": "CA1", "CallStatus": "ringing"}, {}, False, "twilio"),
    ("type+data with webhook-id", {"type": "call.completed", "data": {}}, {"webhook-id": "m1"}, False, "standard"),
    ("header name in any case", {"type": "x", "data": {}}, {"Webhook-Id": "m1"}, False, "standard"),
    ("type+data without header", {"type": "call.completed", "data": {}}, {}, False, "standard"),
    ("event + dict data", {"event": "call.ended", "data": {"call_id": "1"}}, {}, False, "dialercx"),
    ("event + flat fields", {"event": "call.completed", "call_uuid": "u"}, {}, False, "unlimcall"),
    ("event + non-dict data", {"event": "call.completed", "data": "x"}, {}, False, "unlimcall"),
    ("event and type+data without header", {"event": "a", "type": "b", "data": {}}, {}, False, "dialercx"),
    ("CallSid wins over event", {"event": "call.completed", "CallSid": "CA1"}, {}, False, "twilio"),
]


@pytest.mark.parametrize(("item", "headers", "is_form", "expected"), [d[1:] for d in DETECTION],
                         ids=[d[0] for d in DETECTION])
def test_detect_format(item, headers, is_form, expected):
    assert detect_format(item, headers, is_form=is_form) == expected


def test_detect_format_rejects_unknown_shapes_with_their_keys():
    with pytest.raises(PayloadError, match=r"unrecognised payload.*\(foo, id\)"):
        detect_format({"id": 1, "foo": 2}, {})


@pytest.mark.parametrize(("name", "hint"), [
    ("standard_call_completed.json", "standard"),
    ("twilio_completed.json", "twilio"),
    ("dialercx_call_ended.json", "dialercx"),
    ("unlimcall_call_completed.json", "unlimcall"),
])
def test_format_hint_forces_the_parser(name, hint):
    assert load(name, hint=hint)[0].format == hint


def test_format_hint_parses_a_shape_auto_would_not_pick():
    [event] = post({"event": "call.completed", "data": {}, "call_uuid": "u9"}, hint="unlimcall")
    assert (event.format, event.call_id) == ("unlimcall", "u9")


def test_unknown_format_hint_is_a_configuration_error():
    with pytest.raises(ValueError, match="unknown format"):
        load("twilio_completed.form", hint="acme")


# --- dedupe keys ----------------------------------------------------------------

STANDARD_BODY = json.dumps({"type": "call.completed", "data": {"call_id": "c1"}}).encode()
UNLIM_BODY = {"event": "call.answered", "call_uuid": "u1"}
TWILIO_FIELDS = {"CallSid": "CA9", "CallStatus": "ringing", "SequenceNumber": "1"}
LOGIN = {"event": "agent.login", "data": {"agent": "a"}}
LOGIN_BODY = json.dumps(LOGIN).encode()
BATCH_BODY = json.dumps([LOGIN, LOGIN]).encode()
BATCH_SHA = "sha256:" + hashlib.sha256(BATCH_BODY).hexdigest()

DEDUPE = [
    ("webhook-id header", STANDARD_BODY, JSON, {"webhook-id": "msg_1"}, ["msg_1"]),
    ("webhook-id header any case", STANDARD_BODY, JSON, {"Webhook-ID": "msg_1"}, ["msg_1"]),
    ("svix-id header", STANDARD_BODY, JSON, {"svix-id": "msg_2"}, ["msg_2"]),
    ("header beats body id", json.dumps({**UNLIM_BODY, "id": "evt_1"}).encode(), JSON, {"webhook-id": "m"}, ["m"]),
    ("top-level id", json.dumps({**UNLIM_BODY, "id": "evt_1"}).encode(), JSON, {}, ["evt_1"]),
    ("top-level event_id", json.dumps({**UNLIM_BODY, "event_id": 77}).encode(), JSON, {}, ["77"]),
    ("standard without header", STANDARD_BODY, JSON, {}, ["c1:call.completed"]),
    ("call id and event", json.dumps(UNLIM_BODY).encode(), JSON, {}, ["u1:call.answered"]),
    ("twilio", urlencode(TWILIO_FIELDS).encode(), FORM, {}, ["CA9:ringing:1"]),
    ("twilio without sequence", b"CallSid=CA9&CallStatus=busy", FORM, {}, ["CA9:busy"]),
    ("twilio AMD callback", b"CallSid=CA9&AnsweredBy=human", FORM, {}, ["CA9:amd"]),
    ("non-call event without id", LOGIN_BODY, JSON, {}, ["sha256:" + hashlib.sha256(LOGIN_BODY).hexdigest()]),
    ("batch of non-call events", BATCH_BODY, JSON, {}, [f"{BATCH_SHA}#0", f"{BATCH_SHA}#1"]),
    ("batch with webhook-id", BATCH_BODY, JSON, {"webhook-id": "m"}, ["m#0", "m#1"]),
    ("blank header ignored", json.dumps(UNLIM_BODY).encode(), JSON, {"webhook-id": " "}, ["u1:call.answered"]),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "keys"), [d[1:] for d in DEDUPE],
                         ids=[d[0] for d in DEDUPE])
def test_dedupe_key(body, content_type, headers, keys):
    assert [event.dedupe_key for event in normalize(body, content_type, headers)] == keys


def test_same_twilio_callback_twice_gives_the_same_key_and_each_step_its_own():
    steps = ["twilio_initiated.form", "twilio_ringing.form", "twilio_in_progress.form", "twilio_completed.form"]
    keys = [load(name)[0].dedupe_key for name in steps]
    assert len(set(keys)) == 4
    assert keys == [load(name)[0].dedupe_key for name in steps]


# --- errors -----------------------------------------------------------------------

ERRORS = [
    ("empty body", b"", JSON, "empty body"),
    ("whitespace body", b"  \n", JSON, "empty body"),
    ("invalid JSON", b'{"event": ', JSON, "invalid JSON"),
    ("JSON number", b"42", JSON, "JSON body is a number, expected an object"),
    ("JSON string", b'"call.completed"', JSON, "JSON body is a string"),
    ("JSON null", b"null", JSON, "JSON body is null"),
    ("empty array", b"[]", JSON, "empty JSON array"),
    ("array of non-objects", b'[{"event": "agent.login", "data": {}}, 3]', JSON, "item 1 is a number"),
    ("not UTF-8", b'{"event": "\xff"}', JSON, "not valid UTF-8"),
    ("unknown shape", b'{"hello": "world"}', JSON, "unrecognised payload"),
    ("unsupported content type", b"<xml/>", "application/xml", "unsupported content type"),
    ("unlimcall without call id", b'{"event": "call.completed", "from": "+1"}', JSON,
     "call event without a call id"),
    ("dialercx without call id", b'{"event": "call.ended", "data": {"disposition": "SALE"}}', JSON,
     "call event without a call id"),
    ("dialercx recording without call id", b'{"event": "recording.ready", "data": {"url": "u"}}', JSON,
     "call event without a call id"),
    ("twilio without CallSid", b"CallStatus=completed&From=%2B1555", FORM, "call event without a call id"),
    ("standard without call id", b'{"type": "call.completed", "data": {"duration": 5}}', JSON,
     "call event without a call id"),
    ("unknown type with call fields but no id", b'{"event": "x.y", "hangup_cause": "normal_clearing"}', JSON,
     "call event without a call id"),
    ("event type not a string", b'{"event": 5, "call_uuid": "u"}', JSON, "event type must be a string"),
    ("blank event type", b'{"event": "", "call_uuid": "u"}', JSON, "missing event type"),
    ("standard data not an object", b'{"type": "call.completed", "data": [1]}', JSON, "without a data object"),
]


@pytest.mark.parametrize(("body", "content_type", "reason"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_payload_errors_carry_a_reason(body, content_type, reason):
    with pytest.raises(PayloadError, match=reason):
        normalize(body, content_type, {})


def test_payload_error_is_a_value_error():
    assert issubclass(PayloadError, ValueError)


# --- unknown event types are stored, not rejected --------------------------------

UNKNOWN = [
    ("unlimcall call.transferred", {"event": "call.transferred", "call_uuid": "u1", "to": "+1"},
     {"event_type": "call.transferred", "call_id": "u1", "is_call_event": True, "status": None}),
    ("dialercx call.transferred", {"event": "call.transferred", "data": {"call_id": "7"}},
     {"format": "dialercx", "call_id": "7", "is_call_event": True, "status": None}),
    ("dialercx transcript without call", {"event": "transcript.ready", "data": {"summary": "hi"}},
     {"event_type": "transcript.ready", "call_id": None, "is_call_event": False}),
    ("standard unknown non-call", {"type": "contact.created", "data": {"name": "Ann", "phone_number": "555"}},
     {"format": "standard", "is_call_event": False, "call_id": None}),
    ("standard unknown call type", {"type": "call.transcribed", "data": {"call_id": "c2"}},
     {"event_type": "call.transcribed", "is_call_event": True, "status": None}),
    ("alert with a call id is still not a call", {"event": "alert.triggered", "data": {"call_id": "9", "level": 2}},
     {"event_type": "alert.triggered", "call_id": None, "is_call_event": False}),
    ("agent.pause", {"event": "agent.pause", "data": {"agent": "jsmith", "reason": "break"}},
     {"is_call_event": False, "agent": "jsmith"}),
]


@pytest.mark.parametrize(("item", "expected"), [u[1:] for u in UNKNOWN], ids=[u[0] for u in UNKNOWN])
def test_unknown_event_types_are_kept(item, expected):
    [event] = post(item)
    actual = event.to_dict()
    assert {key: actual[key] for key in expected} == expected


def test_unknown_twilio_status_is_kept_without_status():
    [event] = post(b"CallSid=CA1&CallStatus=transferring&SequenceNumber=4", content_type=FORM)
    assert (event.event_type, event.status, event.dedupe_key) == ("twilio.transferring", None, "CA1:transferring:4")


# --- status mapping tables -------------------------------------------------------

UNLIMCALL_STATUS = [
    ("call.failed", {"sip_response_code": 486}, BUSY),
    ("call.failed", {"sip_code": 600}, BUSY),
    ("call.failed", {"sip_status": "480"}, NO_ANSWER),
    ("call.failed", {"sip_code": 408}, NO_ANSWER),
    ("call.failed", {"sip_code": 487}, NO_ANSWER),
    ("call.failed", {"sip_code": 503}, FAILED),
    ("call.failed", {}, FAILED),
    ("call.completed", {"hangup_cause": "USER_BUSY"}, BUSY),
    ("call.completed", {"hangup_cause": "NO_USER_RESPONSE"}, NO_ANSWER),
    ("call.completed", {"hangup_cause": "no_answer"}, NO_ANSWER),
    ("call.completed", {"hangup_cause_code": 17}, BUSY),
    ("call.completed", {"sip_code": 486}, BUSY),
    ("call.completed", {"hangup_cause": "normal_clearing", "duration_seconds": 30}, COMPLETED),
    ("call.completed", {"hangup_cause": "user_busy", "answered_at": "2026-06-04T09:14:29Z"}, COMPLETED),
    ("call.completed", {"outcome": "No Answer"}, NO_ANSWER),
    ("call.completed", {"disposition": "Connected-RPC", "duration_seconds": 60}, COMPLETED),
    ("call.voicemail.detected", {}, VOICEMAIL),
    ("voicemail.detected", {}, VOICEMAIL),
    ("call.answered", {}, ANSWERED),
    ("call.initiated", {}, INITIATED),
]


@pytest.mark.parametrize(("kind", "fields", "status"), UNLIMCALL_STATUS)
def test_unlimcall_status(kind, fields, status):
    [event] = post({"event": kind, "call_uuid": "u1", **fields})
    assert event.status == status


DIALERCX_DISPOSITIONS = [
    ("SALE", COMPLETED), ("CALLBK", COMPLETED), ("DNC", COMPLETED), ("NI", COMPLETED),
    ("Connected-RPC", COMPLETED), ("NOANSWER", NO_ANSWER), ("NA", NO_ANSWER), ("No Answer", NO_ANSWER),
    ("BUSY", BUSY), ("B", BUSY), ("VM", VOICEMAIL), ("AA", VOICEMAIL), ("AM", VOICEMAIL),
    ("Voicemail", VOICEMAIL), ("Answering Machine", VOICEMAIL), ("DROP", COMPLETED), ("ABANDON", COMPLETED),
    ("Abandoned", COMPLETED), ("FAILED", FAILED), ("ERROR", FAILED), (None, COMPLETED),
]


@pytest.mark.parametrize(("disposition", "status"), DIALERCX_DISPOSITIONS)
def test_dialercx_call_ended_status_from_disposition(disposition, status):
    [event] = post({"event": "call.ended", "timestamp": "2026-03-07T15:30:00Z",
                    "data": {"call_id": "1", "disposition": disposition}})
    assert (event.status, event.disposition) == (status, disposition)


@pytest.mark.parametrize(("direction", "expected", "slot"), [
    (None, "outbound", "to_number"), ("outbound", "outbound", "to_number"), ("inbound", "inbound", "from_number"),
])
def test_dialercx_phone_number_is_the_other_party(direction, expected, slot):
    data = {"call_id": "1", "phone_number": "5551234567", "direction": direction}
    [event] = post({"event": "call.started", "data": data})
    assert event.direction == expected
    assert getattr(event, slot) == "5551234567" == event.phone


TWILIO_STATUS = [
    ("queued", QUEUED), ("initiated", INITIATED), ("ringing", RINGING), ("in-progress", ANSWERED),
    ("completed", COMPLETED), ("busy", BUSY), ("failed", FAILED), ("no-answer", NO_ANSWER), ("canceled", CANCELED),
]


@pytest.mark.parametrize(("call_status", "status"), TWILIO_STATUS)
def test_twilio_call_status(call_status, status):
    [event] = post(f"CallSid=CA1&CallStatus={call_status}".encode(), content_type=FORM)
    assert (event.event_type, event.status) == (f"twilio.{call_status}", status)


@pytest.mark.parametrize(("raw", "direction"), [
    ("inbound", "inbound"), ("outbound-api", "outbound"), ("outbound-dial", "outbound"), ("trunking", None),
])
def test_twilio_direction(raw, direction):
    [event] = post(f"CallSid=CA1&CallStatus=ringing&Direction={raw}".encode(), content_type=FORM)
    assert event.direction == direction


STANDARD_TYPES = [
    ("call.initiated", INITIATED), ("call.ringing", RINGING), ("call.answered", ANSWERED),
    ("call.completed", COMPLETED), ("call.failed", FAILED), ("call.no_answer", NO_ANSWER),
    ("call.no-answer", NO_ANSWER), ("call.busy", BUSY), ("call.voicemail", VOICEMAIL), ("call.canceled", CANCELED),
]


@pytest.mark.parametrize(("kind", "status"), STANDARD_TYPES)
def test_standard_type_names_the_status(kind, status):
    [event] = post({"type": kind, "data": {"call_id": "c1"}}, headers={"webhook-id": "m"})
    assert event.status == status


@pytest.mark.parametrize(("data", "expected"), [
    ({"CallSid": "CA5", "CallDuration": "12", "From": "+1"}, {"call_id": "CA5", "talk_seconds": 12.0}),
    ({"callId": "x1", "status": "busy"}, {"call_id": "x1", "status": BUSY}),
    ({"call_uuid": "u", "disposition": "VM"}, {"status": VOICEMAIL}),
    ({"id": "plain-id"}, {"call_id": "plain-id"}),
    ({"call_id": "c", "sip_code": 486}, {"status": BUSY}),
])
def test_standard_data_uses_any_vocabulary(data, expected):
    [event] = post({"type": "call.completed", "data": data})
    actual = event.to_dict()
    assert {key: actual[key] for key in expected} == expected


# --- body parsing ------------------------------------------------------------------

def test_form_repeated_field_keeps_last_value_and_blank_values():
    [event] = post(b"CallSid=CA1&CallStatus=ringing&CallStatus=completed&To=", content_type=FORM)
    assert (event.status, event.to_number) == (COMPLETED, None)


def test_form_trailing_newline_is_ignored():
    body = (SAMPLES / "twilio_completed.form").read_bytes() + b"\n"
    [event] = normalize(body, FORM, {})
    assert event.extra["CallbackSource"] == "call-progress-events"


def test_json_batch_gives_one_event_per_item():
    body = json.dumps([json.loads((SAMPLES / n).read_text()) for n in
                       ("dialercx_call_started.json", "dialercx_call_ended.json", "dialercx_agent_login.json")])
    events = post(body.encode())
    assert [e.event_type for e in events] == ["call.started", "call.ended", "agent.login"]


def test_content_type_parameters_and_sniffing():
    body = (SAMPLES / "unlimcall_call_completed.json").read_bytes()
    assert normalize(body, "application/json; charset=utf-8", {})[0].call_id == UNLIM_ID
    assert normalize(body, "", {})[0].call_id == UNLIM_ID
    assert normalize((SAMPLES / "twilio_busy.form").read_bytes(), "", {})[0].status == BUSY


def test_unparseable_timestamp_is_kept_not_fatal():
    [event] = post({"event": "call.completed", "call_uuid": "u", "ended_at": "yesterday-ish"})
    assert event.ended_at is None
    assert event.extra["unparsed"] == {"ended_at": "yesterday-ish"}


# --- coercion helpers --------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-06-04T09:14:22.000Z", "2026-06-04T09:14:22Z"),
    ("2026-06-04T09:14:22.250Z", "2026-06-04T09:14:22.250Z"),
    ("2026-06-04T11:14:22+02:00", "2026-06-04T09:14:22Z"),
    ("2026-06-04 09:14:22", "2026-06-04T09:14:22Z"),
    ("Mon, 17 Aug 2026 21:15:22 +0000", "2026-08-17T21:15:22Z"),
    (1780564462, "2026-06-04T09:14:22Z"),
    ("1780564462", "2026-06-04T09:14:22Z"),
    (1780564462000, "2026-06-04T09:14:22Z"),
    ("not a time", None),
    ("", None),
    (None, None),
])
def test_to_iso(raw, expected):
    assert to_iso(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (196, 196.0), ("196", 196.0), ("12.5", 12.5), ("03:16", 196.0), ("1:00:00", 3600.0),
    (-1, None), ("abc", None), (None, None), (True, None),
])
def test_to_seconds(raw, expected):
    assert to_seconds(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (486, 486), ("486", 486), ("486 Busy Here", 486), (200.0, 200), ("busy", None), (None, None), (False, None),
])
def test_to_int(raw, expected):
    assert to_int(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("in-progress", ANSWERED), ("No_Answer", NO_ANSWER), ("no answer", NO_ANSWER), ("cancelled", CANCELED),
    ("voicemail.detected", VOICEMAIL), ("started", INITIATED), ("transferred", None), (None, None),
])
def test_status_word(raw, expected):
    assert status_word(raw) == expected


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), "nan", "inf", "1:nan"])
def test_to_seconds_rejects_non_finite(raw):
    assert to_seconds(raw) is None


# --- values SQLite cannot store as they are (issue 9, items 3 and 10) -------------------------


BIG = 10**400


@pytest.mark.parametrize(("raw", "expected"), [
    ("plain", "plain"),
    ("a\ud800b", "a\\ud800b"),
    ("\udfff", "\\udfff"),
    ("nul\x00kept", "nul\x00kept"),
    (2**63 - 1, 2**63 - 1),
    (2**63, str(2**63)),
    (-(2**63) - 1, str(-(2**63) - 1)),
    (BIG, str(BIG)),
    (float("inf"), "inf"),
    (float("-inf"), "-inf"),
    (1e300, 1e300),
    (True, True),
    (None, None),
    ({"k\ud800": [BIG, "v\udc80", {"n": float("nan")}]}, {"k\\ud800": [str(BIG), "v\\udc80", {"n": "nan"}]}),
])
def test_safe_value(raw, expected):
    assert safe_value(raw) == expected
    json.dumps(safe_value(raw), allow_nan=False).encode("utf-8")  # storable as JSON text, exactly


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"event": "call.completed", "call_uuid": "\\ud800"}', "call_id"),
    (b'{"event": "agent.login", "id": "evt-\\udfff", "data": {}}', "dedupe_key"),
    (b'{"event": "x.y", "call_uuid": "ok", "id": "\\ud800"}', "dedupe_key"),
    (b'[{"event": "agent.login", "data": {}}, {"event": "call.completed", "call_uuid": "\\ud800"}]', "call_id"),
])
def test_keys_that_cannot_be_stored_exactly_are_payload_errors(body, reason):
    with pytest.raises(PayloadError, match=f"{reason} .* cannot be stored"):
        normalize(body, "application/json", {})


@pytest.mark.parametrize(("body", "content_type", "field", "kept"), [
    (b'{"event": "call.completed", "call_uuid": "c", "sequence": %d}' % 2**70, "application/json", "sequence",
     str(2**70)),
    (b'{"event": "call.completed", "call_uuid": "c", "sip_code": %d}' % BIG, "application/json", "sip_code", str(BIG)),
    (b"CallSid=CA1&CallStatus=completed&SequenceNumber=%d" % 2**64, "application/x-www-form-urlencoded", "sequence",
     str(2**64)),
])
def test_out_of_range_typed_numbers_are_dropped_and_kept_as_text(body, content_type, field, kept):
    (event,) = normalize(body, content_type, {})
    assert getattr(event, field) is None
    assert event.extra["out_of_range"][field] == kept


@pytest.mark.parametrize("body", [
    b'{"event": "call.completed", "call_uuid": "c", "duration_seconds": 1e999, "ended_at": %d}' % BIG,
    b'{"event": "call.completed", "call_uuid": "c", "duration_seconds": %d}' % BIG,
    b'{"event": "call.completed", "call_uuid": "c", "sequence": "%s"}' % (b"9" * 5000),
    b'{"event": "agent.login", "data": {"n": 1e999, "m": -1e999}}',
])
def test_huge_numbers_never_crash_the_parser(body):
    (event,) = normalize(body, "application/json", {})
    json.dumps(event.to_dict(), allow_nan=False)
    assert event.talk_seconds is None and event.sequence is None


def test_a_number_with_too_many_digits_is_a_payload_error():
    with pytest.raises(PayloadError, match="invalid JSON"):
        normalize(b'{"event": "agent.login", "n": ' + b"1" * 5000 + b"}", "application/json", {})


def test_storable_leaves_ordinary_events_alone():
    (event,) = normalize(b'{"event": "call.completed", "call_uuid": "c", "seat_id": "a"}', "application/json", {})
    assert storable(event) is event
