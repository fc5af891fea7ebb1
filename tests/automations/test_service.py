"""The automations inside a running Service, over real HTTP on loopback: signed events in, the alert
stored with its evidence, the action at a fake dialer and the notification at an Apprise json:// sink,
exactly once, without a CRM; /api/alerts and /api/automations."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from connector import secrets
from connector.app import Service
from tests.automations.sinks import Sink, wait_for
from tests.conftest import SECRET, make_config
from tests.signing import dumps, hmac_headers

CAMPAIGN = "Q1 Sales"


def ended(n: int, disposition: str, campaign: str = CAMPAIGN) -> bytes:
    return dumps({"event": "call.ended", "timestamp": "2026-06-04T09:14:22Z",
                  "data": {"call_id": f"{campaign}-{n}", "agent": "ann", "phone_number": f"+1202555{n:04d}",
                           "disposition": disposition, "campaign": campaign}})


def automation_config(tmp_path, dialer: Sink, apprise: Sink, **abandon):
    return make_config(tmp_path, sources={"dialer": {"kind": "hmac"}}, extra={
        "automations": {"abandon": {"window": 20, "min_calls": 10, "notify_at": 10.0, "act_at": 20.0,
                                    "on_act": "lower_pacing"} | abandon},
        "actions": {"lower_pacing": {"url": dialer.url + "/campaigns/{campaign}/pacing",
                                     "headers": {"Authorization": "Bearer {secret}"},
                                     "json": {"campaign": "{campaign}", "abandon_rate": "{rate}", "ratio": 1.5}}},
        "alerts": {"notify": [f"json://127.0.0.1:{apprise.port}/alerts"], "retry_schedule": [0.2, 0.2, 0.2, 0.2]},
    })


@pytest.fixture
async def sinks():
    dialer, apprise = await Sink().start(), await Sink().start()
    yield dialer, apprise
    await dialer.stop()
    await apprise.stop()


async def post(session, svc, body: bytes) -> int:
    async with session.post(f"{svc.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as resp:
        return resp.status


async def test_signed_events_to_an_alert_an_action_and_a_notification_once(tmp_path, sinks, memory_keyring):
    dialer, apprise = sinks
    secrets.set_secret("source:dialer", SECRET)
    secrets.set_secret("action:lower_pacing", "dialer-api-key")
    svc = Service(automation_config(tmp_path, dialer, apprise))  # no [crm.ghl]: the CRM is unconfigured
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(9):
                assert await post(http, svc, ended(n, "SALE")) == 200
            assert await post(http, svc, ended(9, "DROP")) == 200  # 1 / 10 = 10 %: the warning
            assert await post(http, svc, ended(10, "DROP")) == 200  # 2 / 11 = 18 %
            started = time.monotonic()
            assert await post(http, svc, ended(11, "DROP")) == 200  # 3 / 12 = 25 %: the action
            for n in range(12, 20):  # a storm over the threshold: no more alerts
                assert await post(http, svc, ended(n, "DROP")) == 200
            await wait_for(lambda: len(dialer.requests) >= 1 and len(apprise.requests) >= 2, 5, "action and notices")
            assert time.monotonic() - started < 5
            async with http.get(f"{svc.admin_url}/api/alerts") as resp:
                alerts = (await resp.json())["alerts"]
            assert [(a["recipe"], a["level"]) for a in alerts] == [("abandon", "act"), ("abandon", "notify")]
            act = alerts[0]
            assert act["evidence"]["abandoned"] == 3 and act["evidence"]["calls"] == 12
            assert len(act["evidence"]["event_ids"]) == 3 and act["created_at"].endswith("Z")
            assert "25.00%" in act["message"]
            async with http.get(f"{svc.admin_url}/api/alerts", params={"since": "2999-01-01T00:00:00Z"}) as resp:
                assert (await resp.json())["alerts"] == []
            async with http.get(f"{svc.admin_url}/api/alerts", params={"since": "yesterday"}) as resp:
                assert resp.status == 400
            async with http.get(f"{svc.admin_url}/api/automations") as resp:
                report = {row["name"]: row for row in (await resp.json())["automations"]}
            assert report["abandon"]["enabled"] is True and report["abandon"]["state"] == "tripped"
            assert report["abandon"]["figure"]["rate"] == pytest.approx(100 * 11 / 20, abs=0.01)
            assert report["voicemail"]["enabled"] is False and "callback" in report
            async with http.post(f"{svc.admin_url}/api/alerts/ack", json={"ids": [act["id"]]}) as resp:
                assert resp.status == 401  # acknowledging needs the admin token
            token = {"Authorization": f"Bearer {secrets.get_secret('admin:token')}"}
            async with http.post(f"{svc.admin_url}/api/alerts/ack", json={"ids": "x"}, headers=token) as resp:
                assert resp.status == 400
            async with http.post(f"{svc.admin_url}/api/alerts/ack", json={"ids": [act["id"]]}, headers=token) as resp:
                assert (await resp.json()) == {"acknowledged": 1}
            async with http.get(f"{svc.admin_url}/api/alerts/{act['id']}") as resp:
                one = await resp.json()
            assert one["acknowledged_at"].endswith("Z") and {d["kind"] for d in one["deliveries"]} == {"action", "notify"}

        [action] = dialer.requests
        assert action.method == "POST" and action.path == "/campaigns/Q1%20Sales/pacing"
        assert action.headers["Authorization"] == "Bearer dialer-api-key"
        assert action.headers["Idempotency-Key"] == act["id"]
        assert action.json() == {"campaign": CAMPAIGN, "abandon_rate": 25.0, "ratio": 1.5}
        notified = {r.json()["alert_id"]: r.json() for r in apprise.requests}
        assert set(notified) == {a["id"] for a in alerts} and len(apprise.requests) == 2
        assert act["message"] in notified[act["id"]]["message"]
        # Deliveries are in the delivery log, the secret is not.
        log = await svc.reader.run(lambda db: db.execute("SELECT kind, path, status FROM attempts").fetchall())
        assert sorted(r[2] for r in log) == [200, 200, 200] and not any("dialer-api-key" in str(r) for r in log)
    finally:
        await svc.stop()


async def test_a_sink_that_fails_is_retried_under_the_same_id_then_dead_and_replayed(tmp_path, sinks, memory_keyring):
    dialer, apprise = sinks
    dialer.failures = 2  # two 503s, then OK: delivered on the third try
    apprise.failures = 99  # never: a dead letter
    secrets.set_secret("source:dialer", SECRET)
    secrets.set_secret("action:lower_pacing", "k")
    svc = Service(automation_config(tmp_path, dialer, apprise, notify_at=20.0))
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            for n, disposition in enumerate(["SALE"] * 8 + ["DROP"] * 2):
                assert await post(http, svc, ended(n, disposition)) == 200
            await wait_for(lambda: len(dialer.requests) == 3, 10, "three tries of the action")
            assert {r.headers["Idempotency-Key"] for r in dialer.requests} == {r.headers["X-Callsync-Alert-Id"]
                                                                                 for r in dialer.requests}
            assert len({r.headers["Idempotency-Key"] for r in dialer.requests}) == 1
            dead = []

            async def dead_letters():
                async with http.get(f"{svc.admin_url}/api/dead") as resp:
                    return (await resp.json())["dead"]

            deadline = time.monotonic() + 10
            while len(dead) < 2 and time.monotonic() < deadline:
                dead = [d for d in await dead_letters() if d["source"] == "alert"]
            assert len(dead) == 2 and all("/notify:" in d["call_id"] for d in dead)  # one per alert
            tries = len(apprise.requests)
            assert tries == 2 * 5  # first try + 4 retries each
            apprise.failures = 0
            token = secrets.get_secret("admin:token")
            async with http.post(f"{svc.admin_url}/api/replay", json={"dead": True},
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
            await wait_for(lambda: len(apprise.requests) == tries + 2, 10, "replayed notifications")
            ids = [r.json()["alert_id"] for r in apprise.requests]
            assert len(set(ids)) == 2  # every retry and the replay under the alert's own id
        await wait_for(lambda: len(dialer.requests) == 3, 1)
    finally:
        await svc.stop()


async def test_after_a_restart_the_next_crossing_is_a_new_alert_and_the_old_one_is_not_repeated(
        tmp_path, sinks, memory_keyring):
    dialer, apprise = sinks
    secrets.set_secret("source:dialer", SECRET)
    config = automation_config(tmp_path, dialer, apprise, act_at=50.0)
    svc = Service(config)
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            for n, disposition in enumerate(["SALE"] * 9 + ["DROP"] + ["SALE"] * 20):  # 10 %, then 0 %: re-armed
                assert await post(http, svc, ended(n, disposition)) == 200
        await wait_for(lambda: len(apprise.requests) == 1, 5, "the first warning")
    finally:
        await svc.stop()
    svc = Service(automation_config(tmp_path, dialer, apprise, act_at=50.0))
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert await post(http, svc, ended(30, "DROP")) == 200  # 1 / 20 = 5 %
            assert await post(http, svc, ended(31, "DROP")) == 200  # 2 / 20 = 10 %: the second crossing
            await wait_for(lambda: len(apprise.requests) == 2, 5, "the second warning")
            async with http.get(f"{svc.admin_url}/api/alerts") as resp:
                alerts = (await resp.json())["alerts"]
        assert len(alerts) == 2 and alerts[0]["id"] != alerts[1]["id"]
        assert [r.json()["alert_id"] for r in apprise.requests] == [alerts[1]["id"], alerts[0]["id"]]
    finally:
        await svc.stop()


async def test_a_worker_of_serve_workers_does_not_evaluate_and_says_why(tmp_path, sinks, memory_keyring):
    dialer, apprise = sinks
    secrets.set_secret("source:dialer", SECRET)
    svc = Service(automation_config(tmp_path, dialer, apprise))
    svc.reuse_port = True  # what serve --workers does in each worker process
    await svc.start()
    try:
        async with aiohttp.ClientSession() as http:
            for n, disposition in enumerate(["SALE"] * 9 + ["DROP"] * 3):
                assert await post(http, svc, ended(n, disposition)) == 200
            async with http.get(f"{svc.admin_url}/api/automations") as resp:
                report = await resp.json()
            async with http.get(f"{svc.admin_url}/api/alerts") as resp:
                assert (await resp.json())["alerts"] == []
        assert "serve --workers" in report["error"] and svc.automations.on_stored not in svc.writer.on_stored
    finally:
        await svc.stop()


async def test_the_signed_webhook_a_rejected_action_and_a_pause_over_the_limit(tmp_path, sinks, memory_keyring):
    from datetime import datetime, timedelta, timezone

    from standardwebhooks.webhooks import Webhook

    dialer, hook = sinks
    dialer.failures, dialer.fail_with = 1, 400  # the dialer refuses the action: a dead letter at once
    whsec = "whsec_" + "c2lnbmluZy1rZXktZm9yLWFsZXJ0LXdlYmhvb2tzLTMy"
    secrets.set_secret("source:dialer", SECRET)
    secrets.set_secret("alerts:webhook", whsec)
    config = make_config(tmp_path, sources={"dialer": {"kind": "hmac"}}, extra={
        "automations": {"pause": {"max_minutes": 15, "on_overrun": "page"}},
        "actions": {"page": {"url": dialer.url + "/page/{agent}", "body": "{agent} paused {minutes} min"}},
        "alerts": {"webhook_url": hook.url + "/bi", "retry_schedule": [0.2]},
    })
    svc = Service(config)
    await svc.start()
    try:
        paused = datetime.now(timezone.utc) - timedelta(minutes=20)
        body = dumps({"event": "agent.pause", "timestamp": paused.isoformat(), "data": {"agent": "ann"}, "id": "p1"})
        async with aiohttp.ClientSession() as http:
            assert await post(http, svc, body) == 200
            await wait_for(lambda: len(hook.requests) == 1 and len(dialer.requests) == 1, 10,
                           "the pause alert (checked every 5 s) at the webhook and the dialer")
            [alert] = (await (await http.get(f"{svc.admin_url}/api/alerts")).json())["alerts"]
            deadline = time.monotonic() + 5
            while not any(d["source"] == "alert" for d in (await (await http.get(f"{svc.admin_url}/api/dead")).json())[
                    "dead"]):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        received = hook.requests[0]
        payload = Webhook(whsec).verify(received.body, {k.lower(): v for k, v in received.headers.items()})
        assert received.headers["webhook-id"] == alert["id"] and payload["type"] == "alert.pause"
        assert payload["data"]["fields"]["agent"] == "ann" and payload["data"]["message"] == alert["message"]
        assert alert["recipe"] == "pause" and alert["fields"]["minutes"] >= 20
        assert dialer.requests[0].path == "/page/ann" and dialer.requests[0].body.startswith(b"ann paused 2")
        assert len(dialer.requests) == 1  # 400: not retried
    finally:
        await svc.stop()


async def test_events_stored_but_never_evaluated_are_evaluated_at_the_next_start(tmp_path, sinks, memory_keyring):
    """What a kill -9 between storing an event and storing its alert leaves: the next start raises the
    window's crossing (judged on the rebuilt windows) and the per-call alert (events after the last
    evaluated one), each under the id it would have had."""
    dialer, apprise = sinks
    secrets.set_secret("source:dialer", SECRET)
    svc = Service(automation_config(tmp_path, dialer, apprise, act_at=50.0))
    await svc.start()
    try:
        svc.writer.on_stored.remove(svc.automations.on_stored)  # stored from here on, never evaluated
        async with aiohttp.ClientSession() as http:
            for n, disposition in enumerate(["SALE"] * 9 + ["DROP"]):
                assert await post(http, svc, ended(n, disposition)) == 200
            dial = dumps({"event": "call.initiated", "call_uuid": "intl-1", "from": "+12025550100",
                          "to": "+493012345678", "direction": "outbound"})
            assert await post(http, svc, dial) == 200
        assert svc.automations.alerts_raised == 0
    finally:
        await svc.stop()
    svc = Service(automation_config(tmp_path, dialer, apprise, act_at=50.0))
    await svc.start()
    try:
        await wait_for(lambda: len(apprise.requests) == 2, 5, "both alerts after the restart")
        async with aiohttp.ClientSession() as http:
            alerts = (await (await http.get(f"{svc.admin_url}/api/alerts")).json())["alerts"]
        assert sorted(a["recipe"] for a in alerts) == ["abandon", "caller_id"]
    finally:
        await svc.stop()
