"""The tunnel inside a running callsync, against the local stand-in provider (real HTTP through a
loopback reverse proxy to the hooks listener): state machine, /api/tunnel, reconnect, URL change,
Twilio's public URL and "test from outside"."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import aiohttp
import pytest
from aiohttp import web

from connector.app import Service
from connector.tunnel.ngrok_provider import NO_TOKEN
from connector.tunnel.outside import test_from_outside as outside_test
from tests.conftest import SECRET, TWILIO_TOKEN, make_config
from tests.fakes.tunnel_standin import StandIn
from tests.signing import dumps, hmac_headers, twilio_request

NGROK = {"tunnel": {"provider": "ngrok"}}


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            return resp.status, await resp.json(content_type=None)


async def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def unlimcall(call_id: str) -> bytes:
    return dumps({"event": "call.initiated", "call_uuid": call_id, "from": "+12025551234", "to": "+4930123456789",
                  "direction": "outbound", "initiated_at": "2026-06-04T09:14:22.000Z"})


def twilio_params(call_sid: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": "AC" + "1" * 32, "CallStatus": "ringing", "From": "+15005550006",
            "To": "+15555550100", "Direction": "outbound-api", "SequenceNumber": "0", "ApiVersion": "2010-04-01"}


@pytest.fixture
def standin():
    return StandIn()


@pytest.fixture
async def make_service(tmp_path, source_secrets, standin):
    started: list[Service] = []

    async def make(extra: dict | None = None, *, server: dict | None = None, data_dir=None) -> Service:
        config = make_config(data_dir or tmp_path, server=server, extra=NGROK if extra is None else extra)
        svc = Service(config, tunnel_providers={"ngrok": standin.factory, "cloudflared": standin.factory})
        svc.tunnel.retry_schedule = (0.05,)
        await svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        await svc.stop()


async def test_tunnel_comes_up_forwards_only_the_hooks_listener_and_reports_its_state(make_service, standin):
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up", what="tunnel up")
    status, body = await get_json(f"{svc.admin_url}/api/tunnel")
    assert status == 200
    assert body == {"provider": "ngrok", "state": "up", "public_url": f"http://127.0.0.1:{standin._port}",
                    "error": None}
    assert standin.opened == [f"127.0.0.1:{svc.hooks_port}"]  # the hooks listener, never the admin port

    call_id = str(uuid.uuid4())
    payload = unlimcall(call_id)
    status, answer = await post(f"{body['public_url']}/hooks/dialer", payload, hmac_headers(payload, SECRET))
    assert status == 200 and answer["status"] == "stored"
    assert standin.forwarded == ["/hooks/dialer"]
    status, call = await get_json(f"{svc.admin_url}/api/calls/dialer/{call_id}")
    assert status == 200 and call["call_id"] == call_id

    async with aiohttp.ClientSession() as http:  # the admin API is not behind the public URL
        async with http.get(f"{body['public_url']}/api/metrics") as resp:
            assert resp.status in (404, 405)


async def test_without_a_tunnel_table_or_with_enabled_false_it_stays_off(make_service, standin):
    svc = await make_service({})
    assert (await get_json(f"{svc.admin_url}/api/tunnel"))[1] == {"provider": None, "state": "off",
                                                                  "public_url": None, "error": None}
    await svc.stop()
    svc = await make_service({"tunnel": {"provider": "ngrok", "enabled": False}})
    await asyncio.sleep(0)
    assert svc.tunnel.status() == {"provider": "ngrok", "state": "off", "public_url": None, "error": None}
    assert standin.attempts == 0


async def test_twilio_signatures_are_checked_against_the_tunnel_url(make_service, standin):
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    public = svc.tunnel.public_url
    sid = "CA" + uuid.uuid4().hex
    body, headers = twilio_request(f"{public}/hooks/twilio", twilio_params(sid), TWILIO_TOKEN)
    status, answer = await post(f"{public}/hooks/twilio", body, headers)
    assert status == 200 and answer["status"] == "stored"
    # Signed for the local address instead: refused, the tunnel's URL is the one Twilio signs.
    body, headers = twilio_request(f"{svc.hooks_url}/hooks/twilio", twilio_params("CA" + uuid.uuid4().hex),
                                   TWILIO_TOKEN)
    status, answer = await post(f"{public}/hooks/twilio", body, headers)
    assert status == 401 and answer["reason"] == "bad_signature"


async def test_a_configured_public_url_wins_over_the_tunnel(make_service):
    svc = await make_service(server={"public_url": "https://calls.example.com"})
    await wait_for(lambda: svc.tunnel.state == "up")
    public = svc.tunnel.public_url
    body, headers = twilio_request(f"{public}/hooks/twilio", twilio_params("CA" + uuid.uuid4().hex), TWILIO_TOKEN)
    assert (await post(f"{public}/hooks/twilio", body, headers))[0] == 401
    body, headers = twilio_request("https://calls.example.com/hooks/twilio", twilio_params("CA" + uuid.uuid4().hex),
                                   TWILIO_TOKEN)
    assert (await post(f"{public}/hooks/twilio", body, headers))[0] == 200


async def test_no_network_is_one_sentence_the_receiver_keeps_running_and_it_connects_when_the_network_is_back(
        make_service, standin):
    standin.network = False
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "error")
    status, body = await get_json(f"{svc.admin_url}/api/tunnel")
    assert body["state"] == "error" and body["public_url"] is None
    assert body["error"] == ("ngrok cannot be reached (no internet connection?): callsync keeps receiving locally "
                             "and connects when the network is back.")
    payload = unlimcall(str(uuid.uuid4()))
    assert (await post(f"{svc.hooks_url}/hooks/dialer", payload, hmac_headers(payload, SECRET)))[0] == 200
    attempts = standin.attempts
    await wait_for(lambda: standin.attempts > attempts + 1, what="retries")  # it keeps trying
    standin.network = True
    await wait_for(lambda: svc.tunnel.state == "up", what="tunnel up after the network came back")
    assert svc.tunnel.status()["error"] is None and svc.tunnel.public_url


async def test_a_wrong_authtoken_is_one_sentence_and_is_not_retried(make_service, standin):
    standin.sdk_error_args = ("failed to connect session", "authentication failed: The authtoken you specified is "
                              "properly formed, but it is invalid.\n\nYour authtoken: x", "ERR_NGROK_107")
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "error")
    assert svc.tunnel.error.startswith("ngrok rejected the authtoken (ERR_NGROK_107): copy it again from ")
    await asyncio.sleep(0.3)  # several retry periods
    assert standin.attempts == 1
    standin.sdk_error_args = None
    svc.tunnel.retry_now()  # a new token was saved
    await wait_for(lambda: svc.tunnel.state == "up")


async def test_no_account_with_the_real_ngrok_provider_is_one_sentence(tmp_path, source_secrets, monkeypatch):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    svc = Service(make_config(tmp_path, extra=NGROK))  # the real providers: no authtoken anywhere
    await svc.start()
    try:
        await wait_for(lambda: svc.tunnel.state == "error")
        assert svc.tunnel.error == NO_TOKEN
        assert "callsync secret set tunnel:ngrok" in NO_TOKEN and "NGROK_AUTHTOKEN" in NO_TOKEN
        payload = unlimcall(str(uuid.uuid4()))
        assert (await post(f"{svc.hooks_url}/hooks/dialer", payload, hmac_headers(payload, SECRET)))[0] == 200
    finally:
        await svc.stop()


async def test_a_process_that_exits_is_reopened_and_a_new_address_is_announced(make_service, standin, caplog):
    standin.new_address_on_reopen = True
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    first = svc.tunnel.public_url
    assert svc.tunnel.notice is None  # first run: nothing to update
    caplog.set_level(logging.WARNING)
    await standin.drop()
    await wait_for(lambda: svc.tunnel.state == "up" and svc.tunnel.public_url != first, what="reopened")
    second = svc.tunnel.public_url
    assert svc.tunnel.notice == (f"The public URL changed from {first} to {second}: update the webhook URL in your "
                                 f"dialer to {second}/hooks/dialer, {second}/hooks/dialer_ts, {second}/hooks/std, "
                                 f"{second}/hooks/twilio.")
    assert svc.tunnel.notice in caplog.text
    payload = unlimcall(str(uuid.uuid4()))
    assert (await post(f"{second}/hooks/dialer", payload, hmac_headers(payload, SECRET)))[0] == 200


async def test_an_address_that_differs_from_the_last_run_is_announced(make_service, standin, tmp_path):
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    first = svc.tunnel.public_url
    assert json.loads((tmp_path / "tunnel.json").read_text())["public_url"] == first
    await svc.stop()
    svc = await make_service()  # same address: nothing to say
    await wait_for(lambda: svc.tunnel.state == "up")
    assert svc.tunnel.public_url == first and svc.tunnel.notice is None
    await svc.stop()
    standin.new_address_on_reopen = True
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    assert svc.tunnel.public_url != first
    assert svc.tunnel.notice.startswith(f"The public URL changed from {first} to {svc.tunnel.public_url}: "
                                        "update the webhook URL in your dialer to ")


async def test_a_self_healing_provider_goes_connecting_and_back_up_keeping_its_url(make_service, standin):
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    url = svc.tunnel.public_url
    await standin.drop(self_healing=True)
    status = svc.tunnel.status()
    assert status["state"] == "connecting" and status["public_url"] == url
    assert "reconnecting" in status["error"]
    await standin.heal()
    assert svc.tunnel.status() == {"provider": "ngrok", "state": "up", "public_url": url, "error": None}
    assert standin.attempts == 1  # the provider reconnected by itself: callsync did not reopen it


async def test_switching_off_and_on_applies_at_once(make_service, standin):
    from dataclasses import replace

    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    await svc.tunnel.apply(replace(svc.tunnel.settings, enabled=False))
    assert svc.tunnel.status() == {"provider": "ngrok", "state": "off", "public_url": None, "error": None}
    assert standin.current is None  # closed
    await svc.tunnel.apply(replace(svc.tunnel.settings, enabled=True))
    await wait_for(lambda: svc.tunnel.state == "up")


async def test_from_outside_the_event_comes_back_through_the_tunnel(make_service, standin):
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "up")
    for name in ("dialer", "twilio"):  # twilio: signed for the public URL
        result = await outside_test(svc, name)
        assert result.ok, result.message
        assert result.round_trip_ms is not None and result.round_trip_ms > 0
        assert result.message.startswith(f"The test event came back in through the tunnel "
                                         f"({svc.tunnel.public_url}/hooks/{name}): stored as event #{result.event_id}")
    assert standin.forwarded == ["/hooks/dialer", "/hooks/twilio"]


async def test_from_outside_says_when_the_tunnel_is_down_or_another_program_answers(make_service, standin):
    standin.network = False
    svc = await make_service()
    await wait_for(lambda: svc.tunnel.state == "error")
    result = await outside_test(svc, "dialer")
    assert not result.ok and result.message.startswith("No public URL yet: ngrok cannot be reached")

    # A public URL that leads to some other server which claims to store the event.
    async def impostor(request: web.Request) -> web.Response:
        return web.json_response({"status": "stored", "event_id": 1})

    app = web.Application()
    app.router.add_post("/hooks/{name}", impostor)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        svc.config.server.public_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        stored = unlimcall(str(uuid.uuid4()))  # event #1 exists, but it is not the probe
        assert (await post(f"{svc.hooks_url}/hooks/dialer", stored, hmac_headers(stored, SECRET)))[0] == 200
        result = await outside_test(svc, "dialer")
        assert not result.ok
        assert result.message.endswith("answered, but not from this callsync: another program serves that URL.")
        await runner.cleanup()
        runner = None
        result = await outside_test(svc, "dialer")
        assert not result.ok and "could not be reached from this machine" in result.message
    finally:
        if runner is not None:
            await runner.cleanup()


async def test_serve_workers_never_opens_a_tunnel_per_worker_and_says_so(tmp_path, source_secrets, standin):
    from connector.app import WORKERS_TUNNEL

    svc = Service(make_config(tmp_path, extra=NGROK), tunnel_providers={"ngrok": standin.factory})
    svc.reuse_port = True  # what serve --workers does in each worker process
    await svc.start()
    try:
        assert svc.tunnel._task is None  # nothing was launched
        assert svc.tunnel.status() == {"provider": "ngrok", "state": "error", "public_url": None,
                                       "error": WORKERS_TUNNEL}
        assert standin.attempts == 0
    finally:
        await svc.stop()


async def test_from_outside_signs_every_kind_and_auth_method(make_service, standin, tmp_path):
    """Public-key kinds (signed with the receiver's own test key) and sources with an auth method too."""
    from connector import secrets

    sources = {
        "dialer": {"kind": "hmac", "auth": "api_key"},
        "crm-hooks": {"kind": "ghl"},
        "agents": {"kind": "vapi"},
    }
    secrets.set_secret("source:dialer", SECRET)
    secrets.set_secret("source:dialer:auth", "k3y-for-the-api-key-check")
    secrets.set_secret("source:agents", "vapi-shared-secret")
    svc = await make_service(NGROK | {"sources": sources})
    await wait_for(lambda: svc.tunnel.state == "up")
    for name in sources:
        result = await outside_test(svc, name)
        assert result.ok, (name, result.message)
    assert standin.forwarded == [f"/hooks/{name}" for name in sources]
