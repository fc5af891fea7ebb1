"""Per-contact ordering under CRM faults: real worker, real SQLite, the spec-validated fake GoHighLevel
over loopback HTTP.

The contract: whatever fails and retries in between, a contact's tags and fields in GoHighLevel end up
as if its calls had been applied in the order they ended; the CRM's callback counter equals the store's;
every call gets exactly one note.
"""

from __future__ import annotations

import uuid

import pytest

from connector.store import jobs as store_jobs
from tests.fakes.ghl_server import Fault
from tests.integration.test_sync_e2e import call_event, send, settle, sync_service, wait_until  # noqa: F401

PHONE = "+12025550401"


def ended(minute: int, second: int = 0) -> str:
    return f"2026-06-04T10:{minute:02d}:{second:02d}Z"


def no_answer_at(call_id: str, phone: str, end: str) -> bytes:
    return call_event("call.failed", call_id, phone, sip_response_code=480, hangup_cause="no_answer", ended_at=end)


def connected_at(call_id: str, phone: str, end: str) -> bytes:
    return call_event("call.completed", call_id, phone, ended_at=end)


async def test_a_retried_older_call_never_overwrites_a_newer_outcome(sync_service, ghl):
    """The reported case: call A (no answer) fails once on its note; call B (connected, same phone,
    ended later) comes in meanwhile; A's retry must not write "no answer" over B's result."""
    svc = await sync_service(retry_schedule=[1.0, 1.0])
    ghl.inject("note", Fault.status(500))
    call_a, call_b = str(uuid.uuid4()), str(uuid.uuid4())
    await send(svc, no_answer_at(call_a, PHONE, ended(0)))

    async def a_failed_once():
        return (await svc.metrics())["failed"] >= 1

    await wait_until(a_failed_once, what="call A's first try to fail")
    await send(svc, connected_at(call_b, PHONE, ended(5)))

    async def b_waits_for_a():
        job = await svc.reader.run(store_jobs.job_for_call, "dialer", call_b)
        return job if job["waiting_for"] == f"dialer/{call_a}" else None

    job_b = await wait_until(b_waits_for_a, what="call B to wait behind call A")
    job_a = await svc.reader.run(store_jobs.job_for_call, "dialer", call_a)
    assert job_b["status"] == "pending" and job_b["attempts"] == 0
    assert job_a["status"] == "pending" and "HTTP 500" in job_a["last_error"]
    assert job_a["next_attempt_at"] > job_a["updated_at"]  # when it is tried again
    metrics = await settle(svc)
    assert metrics["processed"] == 2 and metrics["dead"] == 0

    contact = ghl.contact_by_phone(PHONE)
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "connected"
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (0, "0")
    assert "call connected" in contact["tags"] and "no answer" not in contact["tags"]
    bodies = [n["body"] for n in ghl.notes[contact["id"]]]
    assert sorted(b.count(f"[callsync dialer/{c}]") for c in (call_a, call_b) for b in bodies) == [0, 0, 1, 1]



async def store_counter(svc, phone: str) -> int | None:
    row = await svc.reader.run(lambda c: c.execute("SELECT count FROM callback_counters WHERE phone = ?", (phone,)).fetchone())
    return None if row is None else row[0]


async def test_a_call_that_arrives_after_a_newer_one_was_synced_only_adds_its_note(sync_service, ghl):
    svc = await sync_service()
    phone, older, newer = "+12025550402", str(uuid.uuid4()), str(uuid.uuid4())
    await send(svc, connected_at(newer, phone, ended(5)))
    await settle(svc)
    await send(svc, no_answer_at(older, phone, ended(0)))  # ended first, reported late
    await settle(svc)
    contact = ghl.contact_by_phone(phone)
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "connected"
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (0, "0")
    assert await store_counter(svc, phone) == 0  # not counted: it would have been reset by the newer call
    assert contact["tags"] == ["call connected"]
    assert len(ghl.notes[contact["id"]]) == 2
    job = await svc.reader.run(lambda c: c.execute(
        "SELECT s.result FROM job_steps s JOIN jobs j ON j.id = s.job_id WHERE j.call_id = ? AND s.step = 'stale'",
        (older,)).fetchone())
    assert job is not None  # recorded as stale


async def test_a_dead_letter_replayed_after_newer_calls_only_adds_its_note(sync_service, ghl):
    svc = await sync_service()
    phone, older, newer = "+12025550403", str(uuid.uuid4()), str(uuid.uuid4())
    ghl.inject("note", Fault.status(422, {"statusCode": 422, "message": ["note refused"]}))
    await send(svc, no_answer_at(older, phone, ended(0)))
    assert (await settle(svc))["dead"] == 1
    await send(svc, connected_at(newer, phone, ended(5)))
    await settle(svc)
    assert await svc.worker.replay(dead=True) == 1
    metrics = await settle(svc)
    assert metrics["dead"] == 0
    contact = ghl.contact_by_phone(phone)
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "connected"
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (0, "0") and await store_counter(svc, phone) == 0
    assert "no answer" not in contact["tags"]
    assert sorted(f"dialer/{older}" in n["body"] for n in ghl.notes[contact["id"]]) == [False, True]


async def test_a_retry_rereads_the_contact_and_rewrites_what_differs_from_the_store(sync_service, ghl):
    """After a failed try the worker cannot know what the CRM holds (a write may have landed unseen,
    or anything else changed the contact): the retry reads it again and writes what differs, even
    for steps the failed try had finished."""
    svc = await sync_service(retry_schedule=[0.5])
    phone = "+12025550404"
    await send(svc, no_answer_at(str(uuid.uuid4()), phone, ended(0)))
    await settle(svc)
    contact = ghl.contact_by_phone(phone)
    ghl.inject("task", Fault.status(500))  # the abandoned call's last step fails once, after its fields
    await send(svc, call_event("call.completed", str(uuid.uuid4()), phone, disposition="abandoned", ended_at=ended(5)))

    async def task_failed():
        return (await svc.metrics())["failed"] >= 1

    await wait_until(task_failed, what="the task write to fail")
    ghl.contacts[contact["id"]]["tags"].remove("abandoned call")  # the try had added it
    ghl._set_custom_value(ghl.contacts[contact["id"]], {"id": ghl.custom_field_id("contact.callback_count"), "value": 7})
    await settle(svc)
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (1, "1") and await store_counter(svc, phone) == 1
    assert set(contact["tags"]) == {"no answer", "abandoned call"}
    assert len(ghl.tasks[contact["id"]]) == 1


# --- every step, every kind of fault -------------------------------------------------------------

# The default rules as the README states them: outcome -> tags added, tags removed, callback action.
README_RULES = {
    "sale": (["call connected", "sale"], ["no answer"], "reset"),
    "connected": (["call connected"], ["no answer"], "reset"),
    "no_answer": (["no answer"], [], "increment"),
    "busy": (["no answer", "busy"], [], "increment"),
    "voicemail": (["voicemail"], [], "increment"),
    "failed": (["call failed"], [], None),
    "abandoned": (["abandoned call"], [], None),
}
THRESHOLD, EXHAUSTED, ACTIVE = 3, "callback exhausted", "active dialing"

PAYLOADS = {
    "connected": ("call.completed", {}),
    "sale": ("call.completed", {"disposition": "SALE"}),
    "no_answer": ("call.failed", {"sip_response_code": 480, "hangup_cause": "no_answer"}),
    "busy": ("call.failed", {"sip_response_code": 486, "hangup_cause": "user_busy"}),
    "voicemail": ("call.voicemail.detected", {}),
    "failed": ("call.failed", {"sip_response_code": 503, "hangup_cause": "network_out_of_order"}),
    "abandoned": ("call.completed", {"disposition": "abandoned", "duration_seconds": 3}),
}

STEPS = ("lookup", "upsert", "contact", "fields.list", "note", "notes.list", "tags.add", "tags.remove",
         "fields", "task", "tasks.list")
CLIENT_TIMEOUT = 0.4
FAULTS = {
    "500": lambda rng: Fault.status(500),
    "500 after writing": lambda rng: Fault.status(500, perform=True),
    "lands after the timeout": lambda rng: Fault.timeout(CLIENT_TIMEOUT + 0.1, perform=True),
    "empty 201": lambda rng: Fault.empty_201(),
    "cut before writing": lambda rng: Fault.disconnect(),
    "cut after writing": lambda rng: Fault.disconnect(perform=True),
}


def in_order(initial_tags: list[str], outcomes: list[str]) -> tuple[set[str], int | None]:
    """The contact's tags and callback counter after applying its calls one by one, in order."""
    tags, count = set(initial_tags), None
    for outcome in outcomes:
        add, remove, action = README_RULES[outcome]
        add, remove = list(add), list(remove)
        if action == "increment":
            count = (count or 0) + 1
            if count >= THRESHOLD:
                add, remove = add + [EXHAUSTED], remove + [ACTIVE]
        elif action == "reset":
            if (count or 0) >= THRESHOLD:
                remove = remove + [EXHAUSTED]
            count = 0
        tags |= set(add)
        tags -= set(remove) - set(add)
    return tags, count


def fault_queue(rng, kinds: list[str], length: int = 60, rate: float = 0.3) -> list[Fault]:
    return [FAULTS[rng.choice(kinds)](rng) if rng.random() < rate else Fault.none() for _ in range(length)]


async def run_calls_under_faults(sync_service, ghl, seed: int, kinds: list[str]) -> None:
    import random

    rng = random.Random(seed)
    svc = await sync_service(retry_schedule=[0.05] * 60, timeout_seconds=CLIENT_TIMEOUT, rate_limit="2000/10s")
    ghl.configure_rate("2000/10s")
    phones = [f"+1202555{500 + i:04d}" for i in range(6)]
    initial = {}
    for i, phone in enumerate(phones):
        if i % 2 == 0:  # half are known to the CRM already, half are created by the sync
            initial[phone] = [ACTIVE, "vip"]
            ghl.add_contact(phone, tags=initial[phone])
        else:
            initial[phone] = []
    calls = []  # (end, phone, call_id, outcome), sent in the order the calls ended
    for phone in phones:
        for n in range(4):
            calls.append((ended(n * 10 + rng.randrange(10), rng.randrange(60)), phone, str(uuid.uuid4()),
                          rng.choice(sorted(PAYLOADS))))
    calls.sort()
    for step in STEPS:
        ghl.inject(step, *fault_queue(rng, kinds))
    for end, phone, call_id, outcome in calls:
        event, extra = PAYLOADS[outcome]
        await send(svc, call_event(event, call_id, phone, ended_at=end, **extra))

    await settle(svc, timeout=120)
    await ghl.quiet()  # every write delayed past its client's timeout has landed
    metrics = await settle(svc)
    assert metrics["dead"] == 0 and metrics["processed"] == len(calls)
    assert metrics["failed"] > 0  # the faults did hit

    counters = dict(await svc.reader.run(lambda c: c.execute("SELECT phone, count FROM callback_counters").fetchall()))
    for phone in phones:
        mine = [c for c in calls if c[1] == phone]
        outcomes = [c[3] for c in mine]
        contact = ghl.contact_by_phone(phone)
        tags, count = in_order(initial[phone], outcomes)
        where = f"{phone} after {outcomes} (seed {seed}, faults {kinds})"
        assert set(contact["tags"]) == tags, where
        assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == outcomes[-1].replace("_", " "), where
        assert counters.get(phone) == count, where
        crm_count = ghl.custom_value(contact["id"], "contact.callback_count")
        assert (None if crm_count is None else int(crm_count)) == count, where
        notes = [n["body"] for n in ghl.notes.get(contact["id"], [])]
        assert len(notes) == len(mine), where
        for _, _, call_id, outcome in mine:
            marker = f"[callsync dialer/{call_id}]"
            assert sum(marker in body for body in notes) == 1, where
            tasks = [t for t in ghl.tasks.get(contact["id"], []) if marker in t["body"]]
            assert len(tasks) == (outcome == "abandoned"), where


@pytest.mark.parametrize("kind", sorted(FAULTS))
async def test_each_kind_of_fault_on_every_step_keeps_contacts_in_call_order(sync_service, ghl, kind):
    await run_calls_under_faults(sync_service, ghl, seed=sorted(FAULTS).index(kind), kinds=[kind])


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_mixed_faults_on_every_step_keep_contacts_in_call_order(sync_service, ghl, seed):
    await run_calls_under_faults(sync_service, ghl, seed=seed, kinds=sorted(FAULTS))
