"""The ingest step as a pure function: what is new, each call's record, which calls are due for the CRM."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import formats
from connector.ingest import Incoming, Known, KnownCall, due_for_crm, hour_of, ingest, lookups
from connector.model import CallRecord

T0 = 1_780_000_000.0
HOUR = hour_of(T0)


def event(step: str, call: str = "c1", *, n: int = 0, test: bool = False, source: str = "dialer") -> Incoming:
    payload = {"event": step, "call_uuid": call, "from": "+12025550100", "to": "+12025550111",
               "direction": "outbound", "initiated_at": "2026-06-04T09:00:00Z"}
    if step == "call.completed":
        payload |= {"answered_at": "2026-06-04T09:00:07Z", "ended_at": "2026-06-04T09:03:00Z", "duration_seconds": 173}
    if step == "call.failed":
        payload |= {"sip_response_code": 486, "ended_at": "2026-06-04T09:00:30Z"}
    if step == "agent.login":
        payload = {"event": "agent.login", "timestamp": "2026-06-04T08:59:00Z", "data": {"agent": f"a{n}"}}
    body = json.dumps(payload).encode()
    ev = formats.normalize(body, "application/json", {})[0]
    ev.test = test
    return Incoming(source, ev, body, "application/json", {}, received_at=T0 + n)


def known(*stored: Incoming) -> Known:
    """What a store holding ``stored`` (already ingested, in order) knows about them."""
    state = Known()
    done = ingest(list(stored), Known())
    for item in stored:
        state.keys.add((item.source, item.event.dedupe_key))
    for write in done.calls:
        key = (write.record.source, write.record.call_id)
        events = [i.event for i in stored if (i.source, i.event.call_id) == key]
        state.calls[key] = KnownCall(write.record, write.first_received_at, events)
    return state


CASES = [
    # (what the store holds, the batch, duplicates, outcome after each event, calls due for the CRM)
    pytest.param([], [event("call.initiated")], [False], [None], [], id="a call starts: nothing due"),
    pytest.param([], [event("call.completed")], [False], ["connected"], ["c1"], id="a call ends: due"),
    pytest.param([event("call.initiated")], [event("call.completed", n=1)], [False], ["connected"], ["c1"],
                 id="the stored start and the new end fold together"),
    pytest.param([event("call.completed")], [event("call.completed", n=1)], [True], [None], [],
                 id="a stored event again: duplicate, nothing folded"),
    pytest.param([], [event("call.completed"), event("call.completed", n=1)], [False, True], ["connected", None],
                 ["c1"], id="a duplicate inside the batch"),
    pytest.param([event("call.completed")], [event("call.failed", n=1)], [False], ["busy"], [],
                 id="an outcome already reached is not queued twice"),
    pytest.param([], [event("call.completed"), event("call.initiated", n=1)], [False, False],
                 ["connected", "connected"], ["c1"], id="a late start does not undo the end"),
    pytest.param([], [event("call.completed", test=True)], [False], ["connected"], [], id="a test call is never due"),
    pytest.param([], [event("agent.login")], [False], [None], [], id="not about a call: no record, nothing due"),
    pytest.param([], [event("call.completed", "c1"), event("call.failed", "c2", n=1)], [False, False],
                 ["connected", "busy"], ["c1", "c2"], id="two calls in one batch"),
    pytest.param([], [event("call.completed", source="a"), event("call.completed", source="b", n=1)],
                 [False, False], ["connected", "connected"], ["c1", "c1"], id="the same call id in two sources"),
]


@pytest.mark.parametrize("stored, batch, duplicates, outcomes, due", CASES)
def test_ingest(stored, batch, duplicates, outcomes, due):
    done = ingest(batch, known(*stored))
    assert [r.duplicate for r in done.results] == duplicates
    assert [r.record.outcome if r.record else None for r in done.results] == outcomes
    assert [call_id for _, call_id, _ in done.jobs] == due
    assert [item for item, _ in done.events] == [i for i, dup in zip(batch, duplicates) if not dup]
    new = sum(not d for d in duplicates)
    assert done.counts == Counter({(HOUR, "stored"): new, (HOUR, "deduped"): len(batch) - new}) - Counter()


def test_a_call_write_carries_its_first_receipt_and_its_latest_event():
    stored = event("call.initiated")
    done = ingest([event("call.answered", n=5), event("call.completed", n=9)], known(stored))
    (write,) = done.calls
    assert (write.first_received_at, write.updated_at) == (T0, T0 + 9)
    assert write.record.event_count == 3 and write.record.outcome == "connected"
    assert done.results[0].before.event_count == 1 and done.results[1].before.event_count == 2


def test_lookups_name_each_key_and_call_once():
    batch = [event("call.initiated"), event("call.completed", n=1), event("call.completed", n=2), event("agent.login")]
    keys, calls = lookups(batch)
    assert len(keys) == 3 and calls == [("dialer", "c1")]


@pytest.mark.parametrize("before, after, due", [
    (None, None, False),
    (None, CallRecord("s", "c"), False),
    (None, CallRecord("s", "c", outcome="busy"), True),
    (CallRecord("s", "c"), CallRecord("s", "c", outcome="busy"), True),
    (CallRecord("s", "c", outcome="busy"), CallRecord("s", "c", outcome="connected"), False),
    (None, CallRecord("s", "c", outcome="busy", test=True), False),
])
def test_due_for_crm(before, after, due):
    assert due_for_crm(before, after) is due


STEPS = ["call.initiated", "call.answered", "call.completed", "call.failed", "call.voicemail.detected", "agent.login"]
ITEM = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(STEPS))


@settings(max_examples=80, deadline=None)
@given(stored=st.lists(ITEM, max_size=6), batch=st.lists(ITEM, min_size=1, max_size=20))
def test_one_batch_decides_what_one_event_at_a_time_decides(stored, batch):
    past = [event(step, call, n=i, source=source) for i, (source, call, step) in enumerate(stored)]
    items = [event(step, call, n=100 + i, source=source) for i, (source, call, step) in enumerate(batch)]
    whole = ingest(items, known(*past))
    one_by_one, jobs, seen = [], [], list(past)
    for item in items:
        done = ingest([item], known(*seen))
        one_by_one += done.results
        jobs += done.jobs
        if not done.results[0].duplicate:
            seen.append(item)
    assert [(r.duplicate, r.record) for r in whole.results] == [(r.duplicate, r.record) for r in one_by_one]
    assert whole.jobs == jobs
