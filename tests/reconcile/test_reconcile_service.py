"""Reconciliation inside a running callsync against the spec-validated fake Twilio API and the fake
GoHighLevel: exact dedupe with the webhooks, calls filled in reach the CRM once, calls left in progress
are completed, incomplete calls are fetched one by one, and failures are one sentence."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import aiohttp
import pytest

from connector import secrets
from connector.app import Service
from tests.conftest import TWILIO_TOKEN, make_config
from tests.fakes.twilio_fixture import twilio_api  # noqa: F401 - the fixture
from tests.fakes.twilio_server import rfc2822
from tests.signing import twilio_request

FAST = {"retry_schedule": [0.05, 0.1, 0.2], "lease_seconds": 30.0}


def sources(fake, **extra) -> dict:
    return {"twilio": {"kind": "twilio", "reconcile": True, "account_sid": fake.account_sid, "api_url": fake.url}
            | extra, "dialer": {"kind": "hmac"}}


@pytest.fixture
async def start(tmp_path, memory_keyring, ghl, twilio_api, backend):
    twilio_api.credentials[twilio_api.account_sid] = TWILIO_TOKEN
    running: list[Service] = []

    async def start_(*, crm: bool = True, token: str | None = TWILIO_TOKEN, **extra) -> Service:
        if token:
            secrets.set_secret("source:twilio", token)
        secrets.set_secret("source:dialer", "dialer-secret")
        data = {"crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url} | FAST}} if crm else {}
        if crm:
            secrets.set_secret("crm:ghl", ghl.token)
        svc = Service(make_config(tmp_path, sources=sources(twilio_api, **extra), extra=data))
        svc.reconciler.client_options = {"backoff": (0.01, 0.02)}
        await svc.start()
        svc.config.server.public_url = f"http://127.0.0.1:{svc.hooks_port}"
        running.append(svc)
        return svc

    yield start_
    for svc in running:
        await asyncio.wait_for(svc.stop(), 30)


async def until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def admin(svc: Service, path: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}{path}") as resp:
            return await resp.json()


async def webhook(svc: Service, sid: str, status: str, sequence: int, when: datetime, **extra) -> dict:
    params = {"CallSid": sid, "AccountSid": "AC" + "1" * 32, "CallStatus": status, "From": "+15005550006",
              "To": "+12025550199", "Direction": "outbound-api", "SequenceNumber": str(sequence),
              "Timestamp": rfc2822(when)} | extra
    url = f"{svc.public_url()}/hooks/twilio"
    body, headers = twilio_request(url, params, TWILIO_TOKEN)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{svc.hooks_url}/hooks/twilio", data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def runs(svc: Service, n: int) -> None:
    await until(lambda: svc.reconciler.runs.get("twilio", 0) >= n, what=f"{n} reconciliation runs")


async def settled(svc: Service) -> dict:
    async def done():
        metrics = await svc.metrics()
        return metrics if metrics["pending"] == 0 else None
    return await until(done, what="CRM queue empty")


def notes(ghl, phone: str) -> list[dict]:
    contact = ghl.contact_by_phone(phone)
    return ghl.notes.get(contact["id"], []) if contact else []


NOW = datetime.now(timezone.utc)


async def test_a_call_whose_webhooks_never_came_is_filled_in_and_reaches_the_crm_once(start, twilio_api, ghl):
    call = twilio_api.add(start=datetime.now(timezone.utc) - timedelta(minutes=5), to="+12025550101", duration=96)
    svc = await start()
    await runs(svc, 1)
    record = await admin(svc, f"/api/calls/twilio/{call['sid']}")
    assert record["status"] == "completed" and record["talk_seconds"] == 96
    events = (await admin(svc, f"/api/events?call_id={call['sid']}"))["events"]
    assert [(e["event_type"], e["origin"]) for e in events] == [("twilio.completed", "reconcile")]
    await settled(svc)
    assert len(notes(ghl, "+12025550101")) == 1
    # the next run lists it again (it started within the overlap) and finds it stored: nothing new, nothing synced
    svc.reconciler.run_soon("twilio")
    await runs(svc, 2)
    await settled(svc)
    assert sum(1 for p, q in twilio_api.requests if p.endswith("/Calls.json")) == 2
    assert len((await admin(svc, f"/api/events?call_id={call['sid']}"))["events"]) == 1
    assert len(notes(ghl, "+12025550101")) == 1
    assert (await svc.metrics())["processed"] == 1


async def test_a_call_seen_by_webhook_is_neither_counted_nor_synced_again(start, twilio_api, ghl):
    call = twilio_api.add(start=NOW - timedelta(minutes=30), to="+12025550199")
    svc = await start()
    await runs(svc, 1)  # the start-up run: that call was filled in ...
    sid = "CA" + uuid.uuid4().hex  # ... now one that the webhooks do report, within the next listing's overlap
    began = datetime.now(timezone.utc) - timedelta(minutes=5)
    twilio_api.add(sid=sid, start=began, to="+12025550199")
    await webhook(svc, sid, "ringing", 0, began)
    await webhook(svc, sid, "completed", 2, began + timedelta(seconds=47), CallDuration="42")
    await settled(svc)
    stored_before = (await svc.metrics())["stored"]
    svc.reconciler.run_soon("twilio")
    await runs(svc, 2)
    await settled(svc)
    events = (await admin(svc, f"/api/events?call_id={sid}"))["events"]
    assert sorted(e["origin"] for e in events) == ["webhook", "webhook"]
    listed = [q for p, q in twilio_api.requests if p.endswith("/Calls.json")]
    assert len(listed) == 2  # the second run did list it
    metrics = await svc.metrics()
    assert metrics["stored"] == stored_before  # nothing counted
    assert metrics["processed"] == 2  # two calls, each synced once
    assert len(notes(ghl, "+12025550199")) == 2
    assert call["sid"] != sid


async def test_in_progress_by_webhook_and_finished_by_reconciliation_is_completed(start, twilio_api, ghl):
    sid = "CA" + uuid.uuid4().hex
    twilio_api.add(sid=sid, status="in-progress", start=NOW - timedelta(minutes=5), duration=None,
                   to="+12025550177")
    svc = await start(crm=True)
    await webhook(svc, sid, "in-progress", 1, NOW - timedelta(minutes=5))
    await runs(svc, 1)
    assert (await admin(svc, f"/api/calls/twilio/{sid}"))["status"] == "answered"  # still running at Twilio
    twilio_api.finish(sid, "completed", duration=75)
    svc.reconciler.settle = 0  # the call ended long enough ago for its last webhook
    svc.reconciler.run_soon("twilio")
    await runs(svc, 2)
    record = await admin(svc, f"/api/calls/twilio/{sid}")
    assert record["status"] == "completed" and record["outcome"] == "connected" and record["talk_seconds"] == 75
    events = (await admin(svc, f"/api/events?call_id={sid}"))["events"]
    assert sorted(e["origin"] for e in events) == ["reconcile", "webhook"]
    await settled(svc)
    assert len(notes(ghl, "+12025550177")) == 1


async def test_a_call_that_ended_moments_ago_is_left_to_its_webhook(start, twilio_api):
    sid = "CA" + uuid.uuid4().hex
    twilio_api.add(sid=sid, start=datetime.now(timezone.utc) - timedelta(seconds=30), duration=10)
    svc = await start(crm=False)
    await runs(svc, 1)
    assert (await admin(svc, f"/api/events?call_id={sid}"))["events"] == []
    state = (await svc.metrics())["reconcile"]["twilio"]
    assert state["since"] <= datetime.now(timezone.utc).timestamp() - 30  # the next run lists it again


async def test_an_incomplete_call_is_fetched_by_its_sid_and_completed(start, twilio_api):
    sid = "CA" + uuid.uuid4().hex
    began = NOW - timedelta(hours=3)  # before the look-back: the listing does not show it
    twilio_api.add(sid=sid, start=began, to="+12025550166", duration=30)
    started = datetime.now(timezone.utc)  # NOW was taken when the module was imported, maybe minutes ago
    svc = await start(crm=False, reconcile_lookback_hours=1)
    await webhook(svc, sid, "ringing", 0, began)  # its last event, 3 hours ago by the sender's clock
    svc.reconciler.run_soon("twilio")
    await until(lambda: any(p.endswith(f"/Calls/{sid}.json") for p, _ in twilio_api.requests), what="fetch")

    async def completed():
        return (await admin(svc, f"/api/calls/twilio/{sid}"))["status"] == "completed"
    await until(completed, what="completed")
    listing = [dict(parse_qsl(q)) for p, q in twilio_api.requests if p.endswith("/Calls.json")]
    start_filter = datetime.fromisoformat(listing[0]["StartTime>"].replace("Z", "+00:00"))
    assert abs((start_filter - (started - timedelta(hours=1))).total_seconds()) < 120


async def test_the_next_listing_starts_where_the_last_one_ended_with_an_overlap(start, twilio_api):
    svc = await start(crm=False)
    await runs(svc, 1)
    since = (await svc.metrics())["reconcile"]["twilio"]["since"]
    svc.reconciler.run_soon("twilio")
    await runs(svc, 2)
    listing = [dict(parse_qsl(q)) for p, q in twilio_api.requests if p.endswith("/Calls.json")]
    assert len(listing) == 2
    assert listing[1]["StartTime>"] == datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert since < time.time() - 500  # the overlap


async def test_refused_credentials_are_one_sentence_and_the_receiver_keeps_running(start, twilio_api):
    secrets.set_secret("twilio:twilio", "not-the-account-token")  # wins over the source's secret
    svc = await start(crm=False)
    await runs(svc, 1)
    state = (await svc.metrics())["reconcile"]["twilio"]
    assert state["last_error"].startswith("Twilio refused the credentials (401): check account_sid")
    assert state["last_ok"] is None and state["since"] is None
    await webhook(svc, "CA" + uuid.uuid4().hex, "ringing", 0, NOW)  # signed with the right token: still received


async def test_an_api_key_token_from_the_environment(start, twilio_api, monkeypatch):
    key = "SK" + "7" * 32
    twilio_api.credentials[key] = "api-key-secret"
    twilio_api.add(start=NOW - timedelta(hours=1))
    monkeypatch.setenv("CALLSYNC_TWILIO_TOKEN_TWILIO", "api-key-secret")
    svc = await start(crm=False, api_key_sid=key)
    await runs(svc, 1)
    state = (await svc.metrics())["reconcile"]["twilio"]
    assert state["last_error"] is None and state["last_ok"] is not None


async def test_a_step_stored_twice_is_one_event(start, twilio_api):
    """The reconciled event's dedupe key is the CallSid's: a second try of the same step is a duplicate."""
    from connector.reconcile.plan import plan as make_plan

    call = twilio_api.add(start=NOW - timedelta(hours=30))  # outside the look-back: only stored by hand here
    svc = await start(crm=False)
    await runs(svc, 1)
    steps = make_plan([call], {}).steps
    counts = {"filled": 0, "completed": 0}
    await svc.reconciler._apply("twilio", steps, counts)
    await svc.reconciler._apply("twilio", steps, counts)
    assert counts["filled"] == 1
    assert len((await admin(svc, f"/api/events?call_id={call['sid']}"))["events"]) == 1
