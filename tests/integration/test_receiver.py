"""The receiver over real HTTP on loopback, signed by independent libraries."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from connector import secrets
from tests.conftest import SECRET, STANDARD_SECRET, TWILIO_TOKEN
from tests.signing import dumps, hmac_headers, standard_headers, twilio_request


def unlimcall(event: str = "call.completed", call_uuid: str | None = None, **extra) -> dict:
    payload = {
        "event": event,
        "call_uuid": call_uuid or str(uuid.uuid4()),
        "from": "+12025551234",
        "to": "+4930123456789",
        "direction": "outbound",
        "initiated_at": "2026-06-04T09:14:22.000Z",
        "answered_at": "2026-06-04T09:14:29.000Z",
        "ended_at": "2026-06-04T09:17:45.000Z",
        "duration_seconds": 196,
        "hangup_cause": "normal_clearing",
        "hangup_cause_code": 16,
        "seat_id": "seat_0481ab",
        "did_id": "did_de_1092",
    }
    if event == "call.initiated":
        for key in ("answered_at", "ended_at", "duration_seconds", "hangup_cause", "hangup_cause_code"):
            payload.pop(key)
    return payload | extra


async def post(service, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/{name}", data=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            return resp.status, data, dict(resp.headers)


async def admin(service, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{service.admin_url}{path}") as resp:
            return resp.status, await resp.json()


async def metrics_when(service, ready, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, metrics = await admin(service, "/api/metrics")
        if ready(metrics) or time.monotonic() > deadline:
            return metrics
        await asyncio.sleep(0.02)


async def event_count(service) -> int:
    return await service.reader.run(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])


async def test_hmac_event_is_stored_then_deduplicated(service):
    payload = unlimcall()
    body = dumps(payload)
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert status == 200 and data["status"] == "stored"
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET, prefix="sha256="))
    assert status == 200 and data["status"] == "duplicate"
    assert await event_count(service) == 1

    status, call = await admin(service, f"/api/calls/dialer/{payload['call_uuid']}")
    assert status == 200
    assert call["status"] == "completed"
    assert call["talk_seconds"] == 196
    assert call["agent"] == "seat_0481ab" and call["did"] == "did_de_1092"
    assert [e["event_type"] for e in call["events"]] == ["call.completed"]

    metrics = await metrics_when(service, lambda m: m["received"] == 2)
    assert (metrics["stored"], metrics["deduped"], metrics["received"]) == (1, 1, 2)
    assert metrics["ack_latency_ms"]["count"] == 2 and metrics["ack_latency_ms"]["p95"] > 0


async def test_out_of_order_events_build_the_same_call(service):
    call_id = str(uuid.uuid4())
    for event in ("call.completed", "call.initiated"):
        body = dumps(unlimcall(event, call_id))
        status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
        assert (status, data["status"]) == (200, "stored")
    _, call = await admin(service, f"/api/calls/dialer/{call_id}")
    assert call["status"] == "completed" and call["event_count"] == 2
    assert call["ended_at"] and call["initiated_at"]


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda h: h.pop("X-Webhook-Signature"), "missing_signature"),
        (lambda h: h.update({"X-Webhook-Signature": "00" * 32}), "bad_signature"),
        (lambda h: h.update({"X-Webhook-Signature": "not-hex!"}), "bad_signature"),
    ],
)
async def test_bad_signatures_are_refused_and_not_stored(service, mutate, reason):
    body = dumps(unlimcall())
    headers = hmac_headers(body, SECRET)
    mutate(headers)
    status, data, _ = await post(service, "dialer", body, headers)
    assert status == 401 and data["reason"] == reason
    assert await event_count(service) == 0
    metrics = await metrics_when(service, lambda m: m["rejected"])  # counters land with the next commit
    assert metrics["rejected"] == {reason: 1} and metrics["stored"] == 0


async def test_signed_timestamp_window(service):
    body = dumps(unlimcall())
    now = int(time.time())
    status, _, _ = await post(service, "dialer_ts", body, hmac_headers(body, SECRET, timestamp=now, encoding="base64"))
    assert status == 200
    stale = hmac_headers(body, SECRET, timestamp=now - 3600, encoding="base64")
    status, data, _ = await post(service, "dialer_ts", body, stale)
    assert status == 401 and data["reason"] == "stale_timestamp"


async def test_standard_webhooks_signed_by_the_reference_library(service):
    body = dumps({"type": "call.completed", "timestamp": "2026-06-04T09:17:45Z",
                  "data": {"call_id": "std-1", "from": "+12025550100", "to": "+12025550199",
                           "direction": "outbound", "duration": 42}})
    # Rotation: an entry from an old secret first, then the valid one.
    other = standard_headers(body, "whsec_" + "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDE=", "msg_1")
    headers = standard_headers(body, STANDARD_SECRET, "msg_1", extra_signatures=(other["webhook-signature"],))
    status, data, _ = await post(service, "std", body, headers)
    assert (status, data["status"]) == (200, "stored")
    status, data, _ = await post(service, "std", body, standard_headers(body, STANDARD_SECRET, "msg_1"))
    assert (status, data["status"]) == (200, "duplicate")
    old = standard_headers(body, STANDARD_SECRET, "msg_2", at=time.time() - 600)
    status, data, _ = await post(service, "std", body, old)
    assert status == 401 and data["reason"] == "stale_timestamp"


async def test_twilio_status_callback_signed_by_twilio_validator(service):
    url = f"{service.config.server.public_url}/hooks/twilio"
    params = {
        "CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "2" * 32, "From": "+14155550100",
        "To": "+14155550199", "CallStatus": "completed", "Direction": "outbound-api",
        "CallDuration": "17", "SequenceNumber": "3", "CallbackSource": "call-progress-events",
        "Timestamp": "Mon, 16 Aug 2026 21:15:22 +0000", "ApiVersion": "2010-04-01",
    }
    body, headers = twilio_request(url, params, TWILIO_TOKEN)
    status, data, _ = await post(service, "twilio", body, headers)
    assert (status, data["status"]) == (200, "stored")
    tampered, _ = twilio_request(url, params | {"CallDuration": "99"}, TWILIO_TOKEN)
    status, data, _ = await post(service, "twilio", tampered, headers)
    assert status == 401 and data["reason"] == "bad_signature"
    _, call = await admin(service, f"/api/calls/twilio/{params['CallSid']}")
    assert call["status"] == "completed" and call["talk_seconds"] == 17


async def test_request_shape_errors(service):
    body = dumps(unlimcall())
    status, data, _ = await post(service, "nope", body, hmac_headers(body, SECRET))
    assert status == 404 and data["reason"] == "unknown_source"

    big = b'{"pad":"' + b"x" * (300 * 1024) + b'"}'
    status, data, _ = await post(service, "dialer", big, hmac_headers(big, SECRET))
    assert status == 413

    headers = hmac_headers(body, SECRET) | {"Content-Type": "text/plain"}
    status, data, _ = await post(service, "dialer", body, headers)
    assert status == 415 and data["reason"] == "unsupported_media_type"

    garbage = b"{not json"
    status, data, _ = await post(service, "dialer", garbage, hmac_headers(garbage, SECRET))
    assert status == 400 and data["error"]

    no_id = dumps({"event": "call.completed", "from": "+12025551234"})
    status, data, _ = await post(service, "dialer", no_id, hmac_headers(no_id, SECRET))
    assert status == 400 and "call id" in data["error"]
    assert await event_count(service) == 0


async def test_non_call_events_are_stored_without_call_id(service):
    body = dumps({"event": "agent.login", "timestamp": "2026-03-07T15:30:00Z", "data": {"agent": "jsmith"}})
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert (status, data["status"]) == (200, "stored")
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert (status, data["status"]) == (200, "duplicate")
    _, page = await admin(service, "/api/events?type=agent.login")
    assert len(page["events"]) == 1 and page["events"][0]["call_id"] is None


async def test_secret_sources_previous_env_and_none(service, monkeypatch):
    body = dumps(unlimcall())
    secrets.set_secret("source:dialer", "new-secret")
    secrets.set_secret("source:dialer:previous", SECRET)
    status, _, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert status == 200  # the previous secret still verifies during rotation

    secrets.delete_secret("source:dialer")
    secrets.delete_secret("source:dialer:previous")
    body2 = dumps(unlimcall())
    status, data, _ = await post(service, "dialer", body2, hmac_headers(body2, SECRET))
    assert status == 401 and data["reason"] == "no_secret"

    monkeypatch.setenv("CALLSYNC_SECRET_DIALER", "from-env")
    secrets.invalidate_cache()
    status, _, _ = await post(service, "dialer", body2, hmac_headers(body2, "from-env"))
    assert status == 200


async def test_storage_failure_answers_503_and_a_retry_succeeds(service):
    # A full disk: the store may not grow, and this event needs new (overflow) pages.
    body = dumps(unlimcall(notes="x" * 50_000))

    def disk_full(conn):
        if conn.dialect == "postgres":  # a database that takes no writes (25006, as on a standby)
            conn.execute("SET default_transaction_read_only = on")
            return
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    def disk_freed(conn):
        conn.execute("SET default_transaction_read_only = off" if conn.dialect == "postgres"
                     else "PRAGMA max_page_count = 1073741823")

    await service.writer.execute(disk_full)
    status, data, headers = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert status == 503 and headers.get("Retry-After") and data["reason"] == "storage_error"
    assert await event_count(service) == 0
    await service.writer.execute(disk_freed)
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert (status, data["status"]) == (200, "stored")
    assert await event_count(service) == 1


async def test_events_api_pages_and_filters(service):
    for i in range(5):
        body = dumps(unlimcall(to=f"+1202555{i:04d}"))
        await post(service, "dialer", body, hmac_headers(body, SECRET))
    _, page = await admin(service, "/api/events?limit=2")
    assert len(page["events"]) == 2 and page["next_before_id"]
    _, page2 = await admin(service, f"/api/events?limit=10&before_id={page['next_before_id']}")
    assert len(page2["events"]) == 3 and page2["next_before_id"] is None
    _, by_phone = await admin(service, "/api/events?phone=(202) 555-0003")
    assert [e["phone"] for e in by_phone["events"]] == ["+12025550003"]
    status, _ = await admin(service, "/api/events?limit=x")
    assert status == 400
    status, health = await admin(service, "/healthz")
    assert status == 200 and health["ok"]


async def test_calls_pages_do_not_skip_calls_updated_at_the_same_time(service):
    from connector.store import calls as q

    def same_time(conn):
        for i in range(5):
            conn.execute("INSERT INTO calls (source, call_id, updated_at) VALUES ('s', ?, 100.0)", (f"c{i}",))

    await service.writer.execute(same_time)
    first = await service.reader.run(q.list_calls, limit=2)
    seen = [c["call_id"] for c in first]
    while True:
        last = first[-1]
        first = await service.reader.run(q.list_calls, before=last["updated_at"], before_rowid=last["_rowid"], limit=2)
        if not first:
            break
        seen += [c["call_id"] for c in first]
    assert sorted(seen) == [f"c{i}" for i in range(5)] and len(seen) == 5


# --- values that cannot be stored as sent (issue 9, items 3 and 10) -------------------------

async def test_a_call_id_that_cannot_be_stored_is_a_400_not_a_503(service):
    # "\ud800" is a lone UTF-16 surrogate: valid JSON, but no UTF-8 text can hold it.
    body = b'{"event":"call.completed","call_uuid":"bad-\\ud800","from":"+12025550100"}'
    for _ in range(2):  # the same answer every time: the sender must stop retrying
        status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
        assert status == 400 and data["reason"] == "bad_payload", (status, data)
        assert "call_id" in data["error"] and "cannot be stored" in data["error"]
    assert await event_count(service) == 0


async def test_a_value_that_cannot_be_stored_exactly_is_stored_escaped(service):
    body = b'{"event":"call.completed","call_uuid":"esc-1","from":"+12025550100","seat_id":"agent-\\ud800",' \
           b'"notes":{"k\\udfff":"v\\ud800"}}'
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert (status, data["status"]) == (200, "stored"), data
    _, call = await admin(service, "/api/calls/dialer/esc-1")
    assert call["agent"] == "agent-\\ud800"  # the escape sequence as text, six characters
    _, event = await admin(service, f"/api/events/{data['event_id']}")
    assert event["event"]["agent"] == "agent-\\ud800"


async def test_out_of_range_numbers_are_kept_as_text_never_inf(service):
    big = 10**400
    body = (b'{"event":"call.completed","call_uuid":"num-1","from":"+12025550100","direction":"outbound",'
            b'"duration_seconds":1e999,"sequence":' + str(2**70).encode() + b',"sip_code":' + str(big).encode()
            + b',"extra_number":' + str(big).encode() + b',"neg":-1e999}')
    status, data, _ = await post(service, "dialer", body, hmac_headers(body, SECRET))
    assert (status, data["status"]) == (200, "stored"), data

    url = f"{service.config.server.public_url}/hooks/twilio"
    params = {"CallSid": "CA" + "7" * 32, "CallStatus": "completed", "From": "+14155550100",
              "To": "+14155550199", "SequenceNumber": str(2**70), "CallDuration": "9" * 400}
    tw_body, tw_headers = twilio_request(url, params, TWILIO_TOKEN)
    status, data, _ = await post(service, "twilio", tw_body, tw_headers)
    assert (status, data["status"]) == (200, "stored"), data

    def column_types(conn):
        typeof = "typeof" if conn.dialect == "sqlite" else "pg_typeof"  # PostgreSQL: the column's type
        return {
            "events": [tuple(r) for r in conn.execute(f"SELECT DISTINCT CAST({typeof}(sequence) AS TEXT) FROM events")],
            "calls": [tuple(r) for r in conn.execute(
                f"SELECT DISTINCT CAST({typeof}(sip_code) AS TEXT), CAST({typeof}(last_sequence) AS TEXT), "
                f"CAST({typeof}(talk_seconds) AS TEXT) FROM calls")],
            "values": [tuple(r) for r in conn.execute("SELECT sip_code, last_sequence, talk_seconds FROM calls")],
        }

    types = await service.reader.run(column_types)
    # SQLite: never a REAL (Inf) where an integer belongs; PostgreSQL: the columns' own types (no Inf: below)
    allowed = {"integer", "null"} if service.target.dialect == "sqlite" else {"bigint", "double precision"}
    assert {t for (t,) in types["events"]} <= allowed, types
    for row in types["calls"]:
        assert set(row) <= allowed, types
    for row in types["values"]:
        assert all(v is None or abs(v) < 2**63 for v in row), types
    _, page = await admin(service, "/api/events?call_id=num-1")
    _, event = await admin(service, f"/api/events/{page['events'][0]['id']}")
    assert event["event"]["extra"]["out_of_range"]["sequence"] == str(2**70)
    assert event["event"]["sip_code"] is None and event["event"]["talk_seconds"] is None


# --- rejections per source (issue 9, item 19) ------------------------------------------------

async def test_rejections_are_counted_per_source_without_double_counting(service):
    from connector.store import stats as q

    body = dumps(unlimcall())
    for _ in range(2):
        await post(service, "dialer", body, hmac_headers(body, "wrong-secret"))
    await post(service, "dialer_ts", body, hmac_headers(body, SECRET))  # no timestamp header
    await post(service, "nope", body, hmac_headers(body, SECRET))  # unknown: not a source, not per source
    metrics = await metrics_when(service, lambda m: m["rejected_total"] == 4)
    assert metrics["rejected"] == {"bad_signature": 2, "missing_signature": 1, "unknown_source": 1}
    assert metrics["received"] == 4
    by_source = await service.reader.run(q.rejections_by_source, time.time() - 60)
    assert by_source == {"dialer": {"bad_signature": 2}, "dialer_ts": {"missing_signature": 1}}
    assert await service.reader.run(q.rejections_by_source, time.time() + 7200) == {}


# --- test events (issue 9, item 23) ------------------------------------------------------------

async def test_a_test_event_is_marked_and_never_queued_for_the_crm(service):
    test_call, real_call = dumps(unlimcall(call_uuid="t-1")), dumps(unlimcall(call_uuid="r-1"))
    status, data, _ = await post(service, "dialer", test_call, hmac_headers(test_call, SECRET) | {"X-Callsync-Test": "1"})
    assert (status, data["status"]) == (200, "stored")
    status, _, _ = await post(service, "dialer", real_call, hmac_headers(real_call, SECRET))
    assert status == 200

    def rows(conn):
        calls = dict(conn.execute("SELECT call_id, test FROM calls").fetchall())
        jobs = [r[0] for r in conn.execute("SELECT call_id FROM jobs")]
        return calls, jobs

    calls, jobs = await service.reader.run(rows)
    assert calls == {"t-1": 1, "r-1": 0} and jobs == ["r-1"]
    _, event = await admin(service, f"/api/events/{data['event_id']}")
    assert event["event"]["test"] is True


# --- hmac timestamps in milliseconds (issue 9, item 9) -------------------------------------

async def test_hmac_sender_signing_milliseconds_is_accepted(service):
    body = dumps(unlimcall())
    millis = int(time.time() * 1000)
    headers = hmac_headers(body, SECRET, timestamp=millis, encoding="base64")  # signs "<millis>.<body>"
    status, data, _ = await post(service, "dialer_ts", body, headers)
    assert (status, data.get("status")) == (200, "stored"), data
