"""Every sender kind and auth method over real HTTP on loopback against the running Service:
vendor sample payloads signed by independent implementations are stored once and build their
call; anything unsigned or badly signed is refused (401/403 with its reason) and never stored."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import aiohttp
import pytest

from connector import secrets
from connector.app import Service
from tests.conftest import make_config
from tests.sender_signing import (
    Ed25519Pair,
    basic,
    bearer_jwt,
    cloudevent_batch,
    cloudevent_requests,
    ghl_headers,
    ghl_legacy_headers,
    pem,
    retell_headers,
    rsa_pair,
    telnyx_headers,
)
from tests.signing import hmac_headers, standard_headers

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
RETELL_KEY = "key_retell_0123456789abcdef0123456789"
VAPI_SECRET = "vapi-server-secret-0123456789abcdef"
CE_SECRET = "whsec_" + base64.b64encode(b"cloudevents-signing-key-32-bytes").decode()
CE_API_KEY = "ce-api-key-0123456789abcdef0123456789"
GENERIC_SECRET = "generic-hmac-secret-0123456789abcdef"
BASIC_PASSWORD = "basic-password-0123456789abcdef01234"
TELNYX = Ed25519Pair()
GHL = Ed25519Pair()
GHL_RSA = rsa_pair()
JWT_RSA = rsa_pair()
GENERIC_FIELDS = {"call_id": "call.ref", "event": "evt.kind", "event_id": "evt.id", "occurred_at": "evt.at",
                  "from": "call.legs.0.number", "to": "call.legs.1.number", "status": "call.result",
                  "duration": "call.seconds", "agent": "user.name", "campaign": "list"}

SOURCES = {
    "telnyx": {"kind": "telnyx", "public_key": TELNYX.raw_b64},
    "ghl": {"kind": "ghl", "public_key": GHL.pem, "legacy_public_key": pem(GHL_RSA.public_key())},
    "ghl_published": {"kind": "ghl"},
    "retell": {"kind": "retell"},
    "vapi": {"kind": "vapi"},
    "ce": {"kind": "cloudevents", "signature": "standard", "auth": "api_key"},
    "generic": {"kind": "generic", "signature": "hmac", "fields": GENERIC_FIELDS,
                "status_map": {"no-answer": "no_answer", "won": "sale"}},
    "basic": {"kind": "generic", "auth": "basic", "basic_user": "dialer", "fields": GENERIC_FIELDS},
    "jwt": {"kind": "cloudevents", "auth": "bearer", "jwt": True, "jwt_public_key": pem(JWT_RSA.public_key()),
            "jwt_audience": "callsync"},
    "allow": {"kind": "retell", "ip_allowlist": ["203.0.113.0/24"]},
}
KEYRING = {"source:retell": RETELL_KEY, "source:vapi": VAPI_SECRET, "source:ce": CE_SECRET,
           "source:ce:auth": CE_API_KEY, "source:generic": GENERIC_SECRET, "source:basic": BASIC_PASSWORD,
           "source:allow": RETELL_KEY}


@pytest.fixture
async def senders(tmp_path, memory_keyring):
    for user, value in KEYRING.items():
        secrets.set_secret(user, value)
    svc = Service(make_config(tmp_path, sources=SOURCES, server={"trusted_proxies": ["127.0.0.1"]}))
    await svc.start()
    yield svc
    await svc.stop()


async def post(svc: Service, name: str, body: bytes, headers: dict[str, str], content_type: str = JSON,
               query: str = "") -> tuple[int, dict]:
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"} | {"Content-Type": content_type}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{svc.hooks_url}/hooks/{name}{query}", data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def call(svc: Service, source: str, call_id: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/api/calls/{source}/{call_id}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def stored(svc: Service, source: str | None = None) -> int:
    sql, args = ("SELECT COUNT(*) FROM events WHERE source = ?", (source,)) if source else (
        "SELECT COUNT(*) FROM events", ())
    return await svc.reader.run(lambda c: c.execute(sql, args).fetchone()[0])


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


async def test_telnyx_call_control_and_texml_verify_with_the_account_key(senders):
    for name in ("telnyx_call_hangup.json", "telnyx_call_recording_saved.json"):
        body = sample(name)
        status, answer = await post(senders, "telnyx", body, telnyx_headers(TELNYX, body))
        assert (status, answer["status"]) == (200, "stored")
    record = await call(senders, "telnyx", "428c31b6-7af4-4bcb-b7f5-5013ef9657c1")
    assert (record["status"], record["outcome"], record["sip_code"], record["quality_score"]) == ("busy", "busy", 603, 4.5)
    assert record["recording_url"] == "http://example.com/recording.mp3" and record["event_count"] == 2
    body = sample("telnyx_texml_completed.form")
    status, answer = await post(senders, "telnyx", body, telnyx_headers(TELNYX, body), FORM)
    assert (status, answer["status"]) == (200, "stored")
    body = sample("telnyx_call_hangup.json")
    status, answer = await post(senders, "telnyx", body, telnyx_headers(Ed25519Pair(), body))  # someone else's key
    assert (status, answer["reason"]) == (401, "bad_signature")
    status, answer = await post(senders, "telnyx", body, telnyx_headers(TELNYX, body, at=0))
    assert (status, answer["reason"]) == (401, "stale_timestamp")
    assert await stored(senders, "telnyx") == 3


async def test_each_kind_stores_its_samples_once_and_refuses_them_unsigned(senders):
    cases = [
        ("ghl", "ghl_outbound_message_call.json", lambda b: ghl_headers(GHL, b)),
        ("ghl", "ghl_inbound_message_voicemail.json", lambda b: ghl_legacy_headers(GHL_RSA, b)),
        ("ghl", "ghl_external_auth_connected.json", lambda b: ghl_headers(GHL, b)),
        ("retell", "retell_call_ended.json", lambda b: retell_headers(RETELL_KEY, b)),
        ("retell", "retell_call_analyzed.json", lambda b: retell_headers(RETELL_KEY, b)),
        ("vapi", "vapi_status_update.json", lambda b: {"X-Vapi-Secret": VAPI_SECRET}),
        ("vapi", "vapi_end_of_call_report.json", lambda b: {"X-Vapi-Secret": VAPI_SECRET}),
        ("generic", "generic_crm_dialer.json", lambda b: hmac_headers(b, GENERIC_SECRET)),
        ("basic", "generic_crm_dialer.json", lambda b: basic("dialer", BASIC_PASSWORD)),
    ]
    for name, file, sign in cases:
        body = sample(file)
        assert (await post(senders, name, body, {}))[0] == 401, (name, file)  # unsigned
        first, second = await post(senders, name, body, sign(body)), await post(senders, name, body, sign(body))
        assert (first[0], first[1]["status"], second[1]["status"]) == (200, "stored", "duplicate"), (name, file)
    assert await stored(senders) == len(cases)

    retell = await call(senders, "retell", "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6")
    assert (retell["cost"], retell["currency"], retell["outcome"]) == (0.7, "USD", "connected")
    assert retell["summary"].startswith("The agent called the user") and "sentiment: Positive" in retell["analysis"]
    vapi = await call(senders, "vapi", "3c4c9f5e-7b1d-4b7e-9d7a-0f6c2a1e5b21")
    assert (vapi["quality_score"], vapi["cost"], vapi["to_number"]) == (8.0, 0.1123, "+14155550199")
    assert vapi["transcript"].startswith("AI: How can I help?")
    assert (await call(senders, "generic", "CR-88121"))["outcome"] == "no_answer"
    assert (await call(senders, "ghl", "QkNS0DNje0FjoLQdD5O3"))["outcome"] == "voicemail"


async def test_ghl_published_keys_are_the_default(senders):
    body = sample("ghl_outbound_message_call.json")
    status, answer = await post(senders, "ghl_published", body, ghl_headers(GHL, body))  # not GoHighLevel's key
    assert (status, answer["reason"]) == (401, "bad_signature")
    status, answer = await post(senders, "ghl_published", body, {})
    assert (status, answer["reason"]) == (401, "missing_signature")


async def test_cloudevents_from_the_sdk_in_every_mode_with_signature_and_api_key(senders):
    attrs = {"type": "com.example.dialer.call.completed", "source": "/dialer", "id": str(uuid.uuid4()),
             "subject": "ce-call-1", "datacontenttype": JSON}
    data = {"from": "+12025551234", "to": "+4930123456789", "direction": "outbound", "duration_seconds": 42}
    modes = cloudevent_requests(attrs, data)
    answers = []
    for mode in ("binary", "structured"):
        headers, body = modes[mode]
        signed = standard_headers(body, CE_SECRET, f"msg_{mode}") | headers | {"X-API-Key": CE_API_KEY}
        answers.append(await post(senders, "ce", body, signed, headers["content-type"]))
    assert [(s, a["status"]) for s, a in answers] == [(200, "stored"), (200, "duplicate")]  # source + id
    headers, body = cloudevent_batch([({**attrs, "id": "b1", "subject": "ce-call-2"}, data),
                                      ({**attrs, "id": "b2", "subject": "ce-call-3"}, data)])
    status, answer = await post(senders, "ce", body, standard_headers(body, CE_SECRET, "msg_batch") | {
        "X-API-Key": CE_API_KEY}, headers["Content-Type"])
    assert (status, len(answer["event_ids"])) == (200, 2)
    assert (await call(senders, "ce", "ce-call-1"))["talk_seconds"] == 42
    headers, body = modes["structured"]
    status, answer = await post(senders, "ce", body, standard_headers(body, CE_SECRET, "msg_x") | headers,
                                headers["content-type"])
    assert (status, answer["reason"]) == (401, "missing_auth")  # signed, but no API key
    status, answer = await post(senders, "ce", body, standard_headers(body, CE_SECRET, "msg_x") | headers | {
        "X-API-Key": CE_SECRET}, headers["content-type"])  # the signing secret is not the auth credential
    assert (status, answer["reason"]) == (401, "bad_auth")


async def test_auth_credential_from_the_environment(senders, monkeypatch):
    monkeypatch.setenv("CALLSYNC_AUTH_CE", "rotated-api-key-0123456789abcdef01")
    monkeypatch.setenv("CALLSYNC_AUTH_CE_PREVIOUS", CE_API_KEY)
    secrets.invalidate_cache()
    headers, body = cloudevent_requests({"type": "com.example.note", "source": "/x", "id": "env-1"}, {})["structured"]
    for key in ("rotated-api-key-0123456789abcdef01", CE_API_KEY):
        signed = standard_headers(body, CE_SECRET, f"msg_{key[:4]}") | headers | {"X-API-Key": key}
        assert (await post(senders, "ce", body, signed, headers["content-type"]))[0] == 200


async def test_jwt_bearer_with_a_public_key(senders):
    headers, body = cloudevent_requests({"type": "com.example.call.ringing", "source": "/x", "id": "j1",
                                         "subject": "jwt-call"}, {})["structured"]
    ok = await post(senders, "jwt", body, headers | bearer_jwt(JWT_RSA, "RS256", aud="callsync"), headers["content-type"])
    assert ok[0] == 200
    for bad in (bearer_jwt(rsa_pair(), "RS256", aud="callsync"), bearer_jwt(JWT_RSA, "RS256", aud="other"),
                bearer_jwt(JWT_RSA, "RS256", aud="callsync", exp=1)):
        status, answer = await post(senders, "jwt", body, headers | bad, headers["content-type"])
        assert status == 401 and answer["reason"] in ("bad_auth", "expired_token")


async def test_ip_allowlist_behind_a_trusted_tunnel(senders):
    body = sample("retell_call_started.json")
    status, answer = await post(senders, "allow", body, retell_headers(RETELL_KEY, body))  # loopback itself
    assert (status, answer["reason"]) == (403, "ip_not_allowed")
    status, _ = await post(senders, "allow", body, retell_headers(RETELL_KEY, body) | {"X-Forwarded-For": "203.0.113.7"})
    assert status == 200
    status, _ = await post(senders, "allow", body, retell_headers(RETELL_KEY, body) | {
        "X-Forwarded-For": "203.0.113.7, 198.51.100.9"})  # the tunnel saw 198.51.100.9: outside the list
    assert status == 403
    metrics = await senders.metrics()
    assert metrics["rejected"].get("ip_not_allowed") == 2 or await _wait_rejected(senders, "ip_not_allowed", 2)


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path, memory_keyring):
    secrets.set_secret("source:allow", RETELL_KEY)
    svc = Service(make_config(tmp_path, sources={"allow": SOURCES["allow"]}))  # no trusted_proxies
    await svc.start()
    try:
        body = sample("retell_call_started.json")
        status, answer = await post(svc, "allow", body, retell_headers(RETELL_KEY, body) | {
            "X-Forwarded-For": "203.0.113.7"})
        assert (status, answer["reason"]) == (403, "ip_not_allowed")
    finally:
        await svc.stop()


async def _wait_rejected(svc: Service, reason: str, n: int) -> bool:
    for _ in range(200):
        if (await svc.metrics())["rejected"].get(reason) == n:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_api_key_as_a_query_parameter(tmp_path, memory_keyring):
    secrets.set_secret("source:q", "query-key-0123456789abcdef0123456789")
    svc = Service(make_config(tmp_path, sources={"q": {"kind": "generic", "auth": "api_key", "api_key_param": "key",
                                                       "fields": GENERIC_FIELDS}}))
    await svc.start()
    try:
        body = sample("generic_crm_dialer.json")
        assert (await post(svc, "q", body, {}, query="?key=query-key-0123456789abcdef0123456789"))[0] == 200
        assert (await post(svc, "q", body, {}, query="?key=wrong"))[1]["reason"] == "bad_auth"
        headers = await svc.reader.run(lambda c: c.execute("SELECT headers_json FROM events").fetchone()[0])
        assert "query-key" not in headers
    finally:
        await svc.stop()


async def test_credentials_are_redacted_in_stored_headers(senders):
    body = sample("vapi_end_of_call_report_busy.json")
    assert (await post(senders, "vapi", body, {"X-Vapi-Secret": VAPI_SECRET}))[0] == 200
    headers = json.loads(await senders.reader.run(lambda c: c.execute("SELECT headers_json FROM events").fetchone()[0]))
    assert VAPI_SECRET not in json.dumps(headers) and headers["X-Vapi-Secret"] == "[redacted]"


# -- hypothesis over real HTTP: junk for every new verifier is never a 5xx, never stored -------------

class Running:
    """A Service on its own event loop in a thread, so a synchronous hypothesis test can post to it."""

    def __init__(self, svc: Service) -> None:
        import threading

        self.svc = svc
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(svc.start())

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.svc.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def running(tmp_path, memory_keyring):
    for user, value in KEYRING.items():
        secrets.set_secret(user, value)
    server = Running(Service(make_config(tmp_path, sources=SOURCES, server={"trusted_proxies": ["127.0.0.1"]})))
    yield server
    server.close()


def test_junk_for_every_verifier_is_refused_over_http_never_a_5xx_never_stored(running):
    import http.client

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    port = running.svc.hooks_port
    names = ["telnyx", "ghl", "ghl_published", "retell", "vapi", "ce", "generic", "basic", "jwt", "allow"]
    header_names = ["telnyx-signature-ed25519", "telnyx-timestamp", "x-ghl-signature", "x-wh-signature",
                    "x-retell-signature", "X-Vapi-Secret", "Authorization", "X-API-Key", "webhook-id",
                    "webhook-timestamp", "webhook-signature", "X-Webhook-Signature", "X-Forwarded-For", "ce-id",
                    "ce-source", "ce-type", "ce-specversion"]
    values = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60), st.sampled_from([
        "Bearer x", "Basic ZGlhbGVyOng=", "v=1,d=ab", "1", "A" * 88, "203.0.113.7", "1.0", "v1,AAAA", "msg_1"]))
    bodies = st.one_of(st.binary(max_size=300), st.sampled_from([sample(n) for n in (
        "telnyx_call_hangup.json", "retell_call_ended.json", "vapi_end_of_call_report.json",
        "ghl_outbound_message_call.json", "cloudevents_call_completed.json", "generic_crm_dialer.json")]))
    media = st.sampled_from([JSON, FORM, "application/cloudevents+json", "application/cloudevents-batch+json",
                             "text/plain", ""])
    seen: set[int] = set()
    probes: list[str] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(names), headers=st.dictionaries(st.sampled_from(header_names), values, max_size=6),
           body=bodies, content_type=media)
    def probe(name, headers, body, content_type):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("POST", f"/hooks/{name}", body=body, headers={"Content-Type": content_type, **headers})
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        seen.add(response.status)
        probes.append(name)
        assert response.status < 500, (name, headers, response.status)
        assert response.status != 200, (name, headers)  # nothing here is signed: nothing may be stored

    probe()
    count = running.run(running.svc.reader.run(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0]))
    assert len(probes) >= 200 and set(probes) == set(names)  # every verifier got junk
    assert count == 0 and seen <= {400, 401, 403, 413, 415}
    assert {401, 403} <= seen  # the verifiers were reached, not only the media-type check


async def test_a_request_signed_with_the_receivers_own_key_is_always_a_test(senders):
    own = Ed25519Pair()
    own.private = senders.receiver.self_signer.private_key
    own.public = senders.receiver.self_signer.public_key
    body = sample("telnyx_call_hangup.json")  # an outcome: it would reach the CRM if it were not a test
    status, answer = await post(senders, "telnyx", body, telnyx_headers(own, body))  # no X-Callsync-Test header
    assert (status, answer["status"]) == (200, "stored")
    record = await call(senders, "telnyx", "428c31b6-7af4-4bcb-b7f5-5013ef9657c1")
    assert record["test"] in (1, True)
    event = await senders.reader.run(lambda c: c.execute("SELECT event_json FROM events").fetchone()[0])
    assert json.loads(event)["test"] is True
