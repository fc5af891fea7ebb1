"""End to end: signed events in at the receiver -> expected state in the (spec-validating) fake GHL."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from connector import secrets
from connector.app import Service
from connector.store import jobs as store_jobs
from connector.sync.worker import _current_job
from tests.conftest import SECRET, make_config
from tests.fakes.ghl_server import Fault
from tests.signing import dumps, hmac_headers

FAST = {"retry_schedule": [0.05, 0.1, 0.2], "lease_seconds": 30.0}


def crm_table(ghl, **extra) -> dict:
    return {"crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url} | FAST | extra}}


@pytest.fixture
async def sync_service(tmp_path, source_secrets, ghl):
    services = []

    async def start(rules: list[dict] | None = None, **ghl_extra) -> Service:
        extra = crm_table(ghl, **ghl_extra)
        if rules:
            extra["rules"] = rules
        secrets.set_secret("crm:ghl", ghl.token)
        svc = Service(make_config(tmp_path, extra=extra))
        await svc.start()
        services.append(svc)
        return svc

    yield start
    for svc in services:
        await asyncio.wait_for(svc.stop(), 30)


def call_event(event: str, call_id: str, phone: str, **extra) -> bytes:
    payload = {
        "event": event,
        "call_uuid": call_id,
        "from": "+12025550000",
        "to": phone,
        "direction": "outbound",
        "initiated_at": "2026-06-04T09:14:22Z",
        "seat_id": "seat_07",
        "did_id": "did_us_1",
    }
    if event == "call.completed":
        payload |= {"answered_at": "2026-06-04T09:14:29Z", "ended_at": "2026-06-04T09:17:45Z",
                    "duration_seconds": 196, "hangup_cause": "normal_clearing"}
    return dumps(payload | extra)


def no_answer(call_id: str, phone: str) -> bytes:
    return call_event("call.failed", call_id, phone, sip_response_code=480, hangup_cause="no_answer",
                      ended_at="2026-06-04T09:15:00Z")


async def send(svc: Service, body: bytes, source: str = "dialer") -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{svc.hooks_url}/hooks/{source}", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def settle(svc: Service, timeout: float = 15.0) -> dict:
    """Wait until no job is pending or leased; returns the metrics then."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = await svc.metrics()
        if metrics["pending"] == 0:
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"sync did not settle: {metrics}")
        await asyncio.sleep(0.05)


async def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll an async predicate until it is truthy (returns its value) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def notes_for(ghl, phone: str) -> list[dict]:
    contact = ghl.contact_by_phone(phone)
    assert contact is not None, f"no contact for {phone}"
    return ghl.notes.get(contact["id"], [])


async def test_connected_call_becomes_contact_note_tags_and_fields(sync_service, ghl):
    svc = await sync_service()
    call_id = str(uuid.uuid4())
    await send(svc, call_event("call.completed", call_id, "+12025550101"))
    metrics = await settle(svc)
    contact = ghl.contact_by_phone("+12025550101")
    assert contact is not None
    notes = notes_for(ghl, "+12025550101")
    assert len(notes) == 1
    assert f"[callsync dialer/{call_id}]" in notes[0]["body"] and "talk 3m 16s" in notes[0]["body"]
    assert "call connected" in contact["tags"]
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "connected"
    assert ghl.custom_value(contact["id"], "contact.last_call_date") == "2026-06-04"
    assert metrics["processed"] == 1 and metrics["dead"] == 0
    assert metrics["sync_latency_ms"]["p95"] is not None
    assert ghl.count("tags.remove") == 0  # "no answer" was not there: no no-op write


async def test_callback_counter_exhausts_after_three_no_answers_and_resets(sync_service, ghl):
    phone = "+12025550102"
    seeded = ghl.add_contact(phone, firstName="Ana", tags=["active dialing"])
    svc = await sync_service()
    for _ in range(3):
        await send(svc, no_answer(str(uuid.uuid4()), phone))
        await settle(svc)
    contact = ghl.contacts[seeded["id"]]
    assert ghl.custom_value(seeded["id"], "contact.callback_count") in (3, "3")
    assert "callback exhausted" in contact["tags"] and "active dialing" not in contact["tags"]
    assert ghl.count("upsert") == 0 and ghl.count("lookup") == 1  # found once, then cached
    assert len(ghl.notes[seeded["id"]]) == 3

    await send(svc, call_event("call.completed", str(uuid.uuid4()), phone))
    await settle(svc)
    assert ghl.custom_value(seeded["id"], "contact.callback_count") in (0, "0")
    assert "callback exhausted" not in contact["tags"] and "call connected" in contact["tags"]
    assert "no answer" not in contact["tags"]


async def test_duplicates_and_out_of_order_events_give_one_note(sync_service, ghl):
    svc = await sync_service()
    call_id, phone = str(uuid.uuid4()), "+12025550103"
    completed = call_event("call.completed", call_id, phone)
    await send(svc, completed)
    await send(svc, completed)
    await send(svc, call_event("call.initiated", call_id, phone))
    await send(svc, call_event("call.answered", call_id, phone))
    await settle(svc)
    assert len(notes_for(ghl, phone)) == 1


async def test_server_errors_are_retried_without_a_second_note(sync_service, ghl):
    svc = await sync_service()
    ghl.inject("note", Fault.status(500), Fault.empty_201())
    call_id, phone = str(uuid.uuid4()), "+12025550104"
    await send(svc, call_event("call.completed", call_id, phone))
    metrics = await settle(svc)
    assert len(notes_for(ghl, phone)) == 1  # the empty 201 did write it; the retry found it
    assert metrics["processed"] == 1 and metrics["failed"] == 2
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/api/calls/dialer/{call_id}/deliveries") as r:
            log = await r.json()
    statuses = [(a["kind"], a["status"]) for a in log["attempts"]]
    assert ("note", 500) in statuses and ("note", 201) in statuses and ("notes.list", 200) in statuses
    assert all(a["duration_ms"] is not None for a in log["attempts"])


async def test_client_error_goes_dead_and_replay_delivers_once(sync_service, ghl):
    svc = await sync_service()
    ghl.inject("note", Fault.status(422, {"statusCode": 422, "message": ["body too long"]}))
    call_id, phone = str(uuid.uuid4()), "+12025550105"
    await send(svc, call_event("call.completed", call_id, phone))
    metrics = await settle(svc)
    assert metrics["dead"] == 1 and len(notes_for(ghl, phone)) == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/api/dead") as r:
            dead = (await r.json())["dead"]
        assert dead[0]["call_id"] == call_id and "422" in dead[0]["last_error"]
        async with http.post(f"{svc.admin_url}/api/replay", json={"dead": True}) as r:
            assert r.status == 401  # mutating endpoints need the admin token
        token = secrets.get_secret("admin:token")
        async with http.post(f"{svc.admin_url}/api/replay", json={"dead": True},
                             headers={"Authorization": f"Bearer {token}"}) as r:
            assert (await r.json())["requeued"] == 1
    metrics = await settle(svc)
    assert metrics["dead"] == 0 and len(notes_for(ghl, phone)) == 1
    # Replaying a finished call re-checks instead of re-posting the note.
    await svc.worker.replay(source="dialer", call_id=call_id)
    await settle(svc)
    assert len(notes_for(ghl, phone)) == 1


async def test_rejected_token_pauses_sync_until_a_new_token(sync_service, ghl):
    svc = await sync_service()
    secrets.set_secret("crm:ghl", "pit-wrong-token")
    await send(svc, call_event("call.completed", str(uuid.uuid4()), "+12025550106"))
    metrics = await settle(svc)
    assert metrics["dead"] == 1 and "fix your token" in metrics["crm"]["auth_error"]
    second = str(uuid.uuid4())
    await send(svc, call_event("call.completed", second, "+12025550107"))

    async def paused():
        return "fix your token" in (svc.worker.state()["pause_reason"] or "")

    await wait_until(paused, what="the worker to show why it is paused")
    job = await svc.reader.run(store_jobs.job_for_call, "dialer", second)
    assert job["status"] == "pending" and job["attempts"] == 0  # paused, not tried nor dead-lettered
    secrets.set_secret("crm:ghl", ghl.token)
    metrics = await settle(svc)
    assert metrics["crm"]["auth_error"] is None and metrics["processed"] == 1 and metrics["dead"] == 1


async def test_long_outage_drains_afterwards(sync_service, ghl):
    svc = await sync_service(retry_schedule=[0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    ghl.fail_all(503)
    phones = [f"+1202555{200 + i:04d}" for i in range(10)]
    for phone in phones:
        await send(svc, call_event("call.completed", str(uuid.uuid4()), phone))
    async def each_failed_twice():
        jobs = await svc.reader.run(lambda c: c.execute("SELECT failures, last_error, next_attempt_at FROM jobs").fetchall())
        return len(jobs) == 10 and all(failures >= 2 for failures, _, _ in jobs) and jobs

    jobs = await wait_until(each_failed_twice, what="every job to fail twice")
    assert all("HTTP 503" in error and next_at > 0 for _, error, next_at in jobs)  # why each one waits
    during = await svc.metrics()
    assert during["pending"] == 10 and during["processed"] == 0
    ghl.heal()
    metrics = await settle(svc)
    assert metrics["processed"] == 10 and metrics["dead"] == 0
    assert all(len(notes_for(ghl, p)) == 1 for p in phones)


async def test_rate_limited_answers_are_waited_out(sync_service, ghl):
    svc = await sync_service()
    ghl.inject("lookup", Fault.rate_limited(retry_after=0.2), Fault.rate_limited(retry_after=1.0))
    phone, call_id = "+12025550108", str(uuid.uuid4())
    await send(svc, call_event("call.completed", call_id, phone))

    async def paused_for_a_second():
        job = await svc.reader.run(store_jobs.job_for_call, "dialer", call_id)
        return job["attempts"] == 2 and job["status"] == "pending" and job

    job = await wait_until(paused_for_a_second, what="the second 429 to pause the worker")
    assert svc.worker.state()["pause_reason"] == "GHL rate limit"
    assert "HTTP 429" in job["last_error"]  # the window shows why it waits, and until when
    assert job["next_attempt_at"] == pytest.approx(svc.worker.state()["paused_until"], abs=0.5)
    metrics = await settle(svc)
    assert metrics["processed"] == 1 and metrics["dead"] == 0 and metrics["http_429"] == 2
    assert len(notes_for(ghl, phone)) == 1


async def test_missing_contact_can_be_skipped(sync_service, ghl):
    svc = await sync_service(missing_contact="skip")
    await send(svc, call_event("call.completed", str(uuid.uuid4()), "+12025550109"))
    metrics = await settle(svc)
    assert metrics["processed"] == 1 and ghl.contacts == {} and ghl.count("upsert") == 0


async def test_custom_rules_choose_tags_and_task(sync_service, ghl):
    rules = [{"outcome": "sale", "add_tags": ["won"], "task": "Send contract", "task_due_hours": 2}]
    svc = await sync_service(rules=rules)
    phone = "+12025550110"
    await send(svc, call_event("call.completed", str(uuid.uuid4()), phone, disposition="SALE"))
    await settle(svc)
    contact = ghl.contact_by_phone(phone)
    assert contact["tags"] == ["won"]
    tasks = ghl.tasks[contact["id"]]
    assert len(tasks) == 1 and tasks[0]["title"] == "Send contract"


async def test_stale_contact_is_reread_by_id_and_a_deleted_one_looked_up_again(sync_service, ghl):
    svc = await sync_service(contact_cache_seconds=0)
    phone = "+12025550111"
    seeded = ghl.add_contact(phone, tags=["vip"])
    for _ in range(2):
        await send(svc, no_answer(str(uuid.uuid4()), phone))
        await settle(svc)
    assert (ghl.count("lookup"), ghl.count("contact")) == (1, 1)  # second time: GET /contacts/{id}
    assert ghl.custom_value(seeded["id"], "contact.callback_count") in (2, "2")

    del ghl.contacts[seeded["id"]]  # removed in the CRM by someone
    await send(svc, no_answer(str(uuid.uuid4()), phone))
    metrics = await settle(svc)
    assert metrics["dead"] == 0 and (ghl.count("lookup"), ghl.count("upsert")) == (2, 1)
    assert ghl.contact_by_phone(phone)["id"] != seeded["id"]


@pytest.mark.parametrize("slow_first_read", [False, True])
async def test_jobs_of_one_contact_apply_in_order_even_when_claimed_together(sync_service, ghl, slow_first_read):
    svc = await sync_service()
    if slow_first_read:  # the first job's first store read is slow: later jobs must still wait their turn
        original, delayed = svc.worker.reader.run, []

        async def run(fn, *args):
            if _current_job.get() is not None and not delayed:
                delayed.append(fn)
                await asyncio.sleep(0.3)
            return await original(fn, *args)

        svc.worker.reader.run = run
    secrets.delete_secret("crm:ghl")  # build a backlog: every job is claimed at once afterwards
    phone = "+12025550112"
    sequence = ["no_answer", "no_answer", "connected", "no_answer", "busy", "voicemail"]
    # Sent newest first: jobs of a contact run in the order their calls ended, not as they came in.
    for minute, outcome in reversed(list(enumerate(sequence))):
        call_id, end = str(uuid.uuid4()), {"ended_at": f"2026-06-04T11:{minute:02d}:00Z"}
        if outcome == "connected":
            body = call_event("call.completed", call_id, phone, **end)
        elif outcome == "busy":
            body = call_event("call.failed", call_id, phone, sip_response_code=486, hangup_cause="user_busy", **end)
        elif outcome == "voicemail":
            body = call_event("call.voicemail.detected", call_id, phone, **end)
        else:
            body = call_event("call.failed", call_id, phone, sip_response_code=480, hangup_cause="no_answer", **end)
        await send(svc, body)
    assert (await svc.metrics())["pending"] == len(sequence)
    secrets.set_secret("crm:ghl", ghl.token)
    metrics = await settle(svc)
    assert metrics["processed"] == len(sequence) and metrics["dead"] == 0
    contact = ghl.contact_by_phone(phone)
    assert ghl.count("lookup") + ghl.count("upsert") == 2  # one search, one create: not one per job
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (3, "3")  # 1, 2, reset, 1, 2, 3
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "voicemail"
    assert set(contact["tags"]) == {"no answer", "call connected", "busy", "voicemail", "callback exhausted"}
    assert len(ghl.notes[contact["id"]]) == len(sequence)
    assert ghl.count("fields.list") == 1
