"""The reconciliation plan, table-driven: which listed calls are filled in, completed, skipped or left
waiting, where the next listing starts, and the event a step stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector.calls import fold_events
from connector.formats import normalize
from connector.reconcile.plan import (
    COMPLETE,
    FILL,
    call_event,
    callback_form,
    is_incomplete,
    next_since,
    plan,
    twilio_time,
)
from tests.fakes.twilio_server import make_call

ACCOUNT = "AC" + "1" * 32
T0 = datetime(2026, 11, 30, 14, 2, tzinfo=timezone.utc)
SID = {name: "CA" + (c * 32) for name, c in zip(("a", "b", "c", "d"), "abcd")}


def call(name: str, status: str, minute: int = 0, **kw) -> dict:
    return make_call(ACCOUNT, sid=SID[name], status=status, start=T0 + timedelta(minutes=minute), **kw)


# (listed calls, what the store has: name -> status / None, expected steps, skipped, children, waiting)
CASES = [
    ("unknown finished call is filled in", [call("a", "completed")], {}, [(FILL, "a")], 0, 0, []),
    ("finished by webhook already: skipped", [call("a", "completed")], {"a": "completed"}, [], 1, 0, []),
    ("busy by webhook already: skipped", [call("a", "busy")], {"a": "busy"}, [], 1, 0, []),
    ("voicemail by webhook, completed at Twilio: skipped", [call("a", "completed")], {"a": "voicemail"}, [], 1, 0,
     []),
    ("in progress by webhook, finished at Twilio: completed", [call("a", "completed")], {"a": "answered"},
     [(COMPLETE, "a")], 0, 0, []),
    ("ringing by webhook, no answer at Twilio: completed", [call("a", "no-answer")], {"a": "ringing"},
     [(COMPLETE, "a")], 0, 0, []),
    ("stored without a status: completed", [call("a", "failed")], {"a": None}, [(COMPLETE, "a")], 0, 0, []),
    ("still in progress at Twilio: waits", [call("a", "in-progress")], {}, [], 0, 0, ["a"]),
    ("queued and ringing wait too", [call("a", "queued"), call("b", "ringing")], {"a": "queued"}, [], 0, 0,
     ["a", "b"]),
    ("unknown child leg is not ours to fill", [call("a", "completed", parent_call_sid=SID["b"])], {}, [], 0, 1, []),
    ("known child leg is completed", [call("a", "completed", parent_call_sid=SID["b"])], {"a": "answered"},
     [(COMPLETE, "a")], 0, 0, []),
    ("a call listed twice (pages shifted) counts once", [call("a", "completed"), call("a", "completed")], {},
     [(FILL, "a")], 0, 0, []),
    ("canceled is finished", [call("a", "canceled")], {}, [(FILL, "a")], 0, 0, []),
    ("a mix", [call("a", "completed"), call("b", "completed"), call("c", "in-progress"), call("d", "busy")],
     {"a": "completed", "d": "ringing"}, [(FILL, "b"), (COMPLETE, "d")], 1, 0, ["c"]),
]


@pytest.mark.parametrize("what,calls,stored,steps,skipped,children,waiting", CASES, ids=[c[0] for c in CASES])
def test_plan(what, calls, stored, steps, skipped, children, waiting):
    result = plan(calls, {SID[name]: status for name, status in stored.items()})
    assert [(s.kind, s.sid) for s in result.steps] == [(kind, SID[name]) for kind, name in steps]
    assert (result.skipped, result.children) == (skipped, children)
    assert result.waiting == [SID[name] for name in waiting]


def test_next_listing_starts_an_overlap_back_and_never_after_an_open_call():
    start = T0.timestamp()
    assert next_since(start + 3600, plan([call("a", "completed")], {}), overlap=600) == start + 3000
    result = plan([call("a", "in-progress", minute=0), call("b", "ringing", minute=30)], {})
    assert result.oldest_waiting_start == start
    assert next_since(start + 3600, result, overlap=600) == start


@pytest.mark.parametrize("status,minutes_ago,incomplete", [
    ("answered", 11, True), ("answered", 9, False), ("ringing", 10, True), ("completed", 60, False),
    ("voicemail", 60, False), (None, 30, True),
])
def test_incomplete_after_ten_minutes_without_a_final_event(status, minutes_ago, incomplete):
    now = T0.timestamp()
    assert is_incomplete(status, now - minutes_ago * 60, now, 10) is incomplete


def test_the_stored_event_reads_like_twilios_last_callback():
    resource = call("a", "completed", duration=96, answered_by="human")
    event, body = call_event(resource)
    assert (event.event_type, event.dedupe_key, event.call_id) == ("twilio.completed", f"reconcile:{SID['a']}", SID["a"])
    assert (event.status, event.talk_seconds, event.answered_by) == ("completed", 96.0, "human")
    assert event.initiated_at == "2026-11-30T14:02:00Z" and event.ended_at == "2026-11-30T14:03:41Z"
    assert event.from_number == "+15005550006" and event.to_number == "+15555550123"
    assert b'"sid":"' + SID["a"].encode() in body
    assert twilio_time(resource["start_time"]) == T0.timestamp()


def test_a_webhook_in_progress_plus_the_reconciled_end_fold_into_a_finished_call():
    """The call record comes out the same as if the last webhook had arrived."""
    from urllib.parse import urlencode

    webhook = {"CallSid": SID["a"], "CallStatus": "in-progress", "From": "+15005550006", "To": "+15555550123",
               "Direction": "outbound-api", "SequenceNumber": "1", "Timestamp": "Mon, 30 Nov 2026 14:02:05 +0000"}
    answered = normalize(urlencode(webhook).encode(), "application/x-www-form-urlencoded", {}, format_hint="twilio")
    finished, _ = call_event(call("a", "completed", answered_by="machine_end_beep"))
    record = fold_events("twilio", [*answered, finished])
    assert record.status == "completed" and record.is_terminal
    assert record.outcome == "voicemail"
    assert callback_form(call("a", "in-progress"))["CallStatus"] == "in-progress"
