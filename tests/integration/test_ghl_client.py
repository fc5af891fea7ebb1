"""GhlClient against the spec-validating fake GHL over real HTTP on loopback.

The ``ghl`` fixture (tests.fakes.ghl_fixture) fails any test whose requests
violate the official OpenAPI files.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest

from connector.sync.crm import (
    Attempt,
    AuthError,
    GhlClient,
    PermanentError,
    RateLimited,
    TokenBucket,
    TransientError,
    UnknownOutcome,
    api_version_for,
)
from tests.fakes.ghl_server import FakeGhl, Fault

PHONE = "+15035550123"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def attempts() -> list[Attempt]:
    return []


def make_client(ghl: FakeGhl, session, attempts=None, **kwargs) -> GhlClient:
    options = {
        "base_url": ghl.base_url,
        "token": ghl.token,
        "location_id": ghl.location_id,
        "timeout": 2.0,
    }
    if attempts is not None:
        options["on_attempt"] = attempts.append
    options.update(kwargs)
    return GhlClient(session, **options)


@pytest.fixture
def client(ghl, session, attempts) -> GhlClient:
    return make_client(ghl, session, attempts)


def seconds_to_utc_midnight() -> float:
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    return (midnight - now).total_seconds()


# -- happy paths ------------------------------------------------------------------------------


async def test_get_location_and_request_headers(ghl, client, attempts):
    location = await client.get_location()
    assert location["id"] == ghl.location_id
    assert location["settings"]["allowDuplicateContact"] is False

    (request,) = ghl.requests
    assert request.headers["Authorization"] == f"Bearer {ghl.token}"
    assert request.headers["Version"] == "2021-07-28"
    assert request.headers["Accept"] == "application/json"
    (attempt,) = attempts
    assert (attempt.kind, attempt.method, attempt.status, attempt.error) == ("location", "GET", 200, None)
    assert attempt.path == f"/locations/{ghl.location_id}"
    assert attempt.trace_id
    assert attempt.duration_ms >= 0
    assert json.loads(attempt.response_body)["location"]["id"] == ghl.location_id


async def test_find_contact_by_phone(ghl, client, attempts):
    assert await client.find_contact_by_phone(PHONE) is None
    seeded = ghl.add_contact("(503) 555-0123", firstName="Ana")
    found = await client.find_contact_by_phone(PHONE)
    assert found is not None
    assert found["id"] == seeded["id"]
    assert found["phone"] == PHONE

    lookups = ghl.requests_of("lookup")
    assert len(lookups) == 2
    assert lookups[0].query == {"locationId": ghl.location_id, "number": PHONE}
    assert "number=%2B15035550123" in lookups[0].raw_query  # '+' URL-encoded, as documented
    assert [a.kind for a in attempts] == ["lookup", "lookup"]


async def test_upsert_creates_then_updates(ghl, client):
    first = await client.upsert_contact(PHONE, firstName="Ana", lastName="Lima", source="callsync")
    assert first["new"] is True
    contact_id = first["contact"]["id"]
    stored = ghl.contacts[contact_id]
    assert stored["phone"] == PHONE
    assert stored["name"] == "Ana Lima"
    assert stored["source"] == "callsync"

    second = await client.upsert_contact(PHONE, email="ana@example.com")
    assert second["new"] is False
    assert second["contact"]["id"] == contact_id
    assert len(ghl.contacts) == 1
    assert ghl.contacts[contact_id]["email"] == "ana@example.com"
    assert ghl.contacts[contact_id]["firstName"] == "Ana"

    for request in ghl.requests_of("upsert"):
        assert "tags" not in request.json
        assert request.json["locationId"] == ghl.location_id
        assert request.headers["Content-Type"].startswith("application/json")


async def test_upsert_refuses_tags(client, ghl):
    with pytest.raises(ValueError):
        await client.upsert_contact(PHONE, tags=["x"])
    assert ghl.requests == []


async def test_get_contact(ghl, client):
    seeded = ghl.add_contact(PHONE, firstName="Bo")
    contact = await client.get_contact(seeded["id"])
    assert contact["firstName"] == "Bo"
    assert contact["customFields"] == []


async def test_notes_add_and_list(ghl, client, attempts):
    contact = ghl.add_contact(PHONE)
    note = await client.add_note(contact["id"], "Call 1: no answer")
    assert note["body"] == "Call 1: no answer"
    await client.add_note(contact["id"], "Call 2: connected, 3m12s")
    assert [n["body"] for n in ghl.notes[contact["id"]]] == ["Call 1: no answer", "Call 2: connected, 3m12s"]

    notes = await client.list_notes(contact["id"])
    assert {n["id"] for n in notes} == {n["id"] for n in ghl.notes[contact["id"]]}
    assert [a.kind for a in attempts] == ["note", "note", "notes.list"]
    assert all(a.status == 201 for a in attempts[:2])


async def test_tags_add_and_remove(ghl, client, attempts):
    contact = ghl.add_contact(PHONE)
    tags = await client.add_tags(contact["id"], ["called", "no-answer"])
    assert tags == ["called", "no-answer"]
    await client.add_tags(contact["id"], ["called", "callback"])
    assert ghl.contacts[contact["id"]]["tags"] == ["called", "no-answer", "callback"]

    remaining = await client.remove_tags(contact["id"], ["no-answer"])
    assert remaining == ["called", "callback"]
    assert ghl.contacts[contact["id"]]["tags"] == ["called", "callback"]
    (delete,) = ghl.requests_of("tags.remove")
    assert delete.method == "DELETE"
    assert delete.json == {"tags": ["no-answer"]}
    assert [a.kind for a in attempts] == ["tags.add", "tags.add", "tags.remove"]


async def test_custom_fields_list_and_update(ghl, client):
    fields = await client.list_custom_fields()
    by_key = {f["fieldKey"]: f for f in fields}
    assert set(by_key) == {"contact.last_call_outcome", "contact.last_call_date", "contact.callback_count"}
    assert by_key["contact.callback_count"]["dataType"] == "NUMERICAL"
    assert ghl.requests_of("fields.list")[0].query == {"model": "contact"}

    contact = ghl.add_contact(PHONE)
    updated = await client.update_custom_fields(
        contact["id"],
        [
            (by_key["contact.last_call_outcome"]["id"], "no_answer"),
            (by_key["contact.last_call_date"]["id"], "2026-06-04"),
            (by_key["contact.callback_count"]["id"], 3),
        ],
    )
    assert updated["id"] == contact["id"]
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "no_answer"
    assert ghl.custom_value(contact["id"], "contact.last_call_date") == "2026-06-04"
    assert ghl.custom_value(contact["id"], "contact.callback_count") == 3
    (put,) = ghl.requests_of("fields")
    assert put.method == "PUT"
    items = put.json["customFields"]
    assert all(set(item) == {"id", "field_value"} for item in items)
    # the spec types a numeric field_value as "object"; numbers travel as strings
    assert items[2]["field_value"] == "3"
    assert ghl.ignored_custom_fields == []


async def test_custom_field_value_key_is_configurable(ghl, session):
    client = make_client(ghl, session, custom_field_value_key="value")
    contact = ghl.add_contact(PHONE)
    field_id = ghl.custom_field_id("contact.last_call_outcome")
    await client.update_custom_fields(contact["id"], [(field_id, "busy")])
    assert ghl.requests_of("fields")[0].json == {"customFields": [{"id": field_id, "value": "busy"}]}
    assert ghl.custom_value(contact["id"], "contact.last_call_outcome") == "busy"


async def test_create_task(ghl, client):
    contact = ghl.add_contact(PHONE)
    task = await client.create_task(contact["id"], "Call back Ana", "She asked for 3pm", "2026-06-05T15:00:00Z")
    assert task["completed"] is False
    (stored,) = ghl.tasks[contact["id"]]
    assert stored["title"] == "Call back Ana"
    assert stored["body"] == "She asked for 3pm"
    assert stored["dueDate"] == "2026-06-05T15:00:00Z"
    assert ghl.requests_of("task")[0].json["completed"] is False
    tasks = await client.list_tasks(contact["id"])
    assert [t["id"] for t in tasks] == [task["id"]]


async def test_every_request_carries_the_required_headers(ghl, client):
    contact = ghl.add_contact(PHONE)
    await client.get_location()
    await client.find_contact_by_phone(PHONE)
    await client.upsert_contact(PHONE, firstName="X")
    await client.get_contact(contact["id"])
    await client.add_note(contact["id"], "n")
    await client.list_notes(contact["id"])
    await client.add_tags(contact["id"], ["a"])
    await client.remove_tags(contact["id"], ["a"])
    await client.list_custom_fields()
    await client.update_custom_fields(contact["id"], [(ghl.custom_field_id("contact.last_call_outcome"), "x")])
    await client.create_task(contact["id"], "t", "b", "2026-06-05T15:00:00Z")
    await client.list_tasks(contact["id"])
    assert len(ghl.requests) == 12
    for request in ghl.requests:
        assert request.headers["Authorization"] == f"Bearer {ghl.token}"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Version"] == "2021-07-28"
        assert request.status is not None and request.status < 300
        if request.json is not None:
            assert request.headers["Content-Type"].startswith("application/json")
    assert ghl.violations == []


def test_version_table():
    assert api_version_for("/contacts/abc/notes") == "2021-07-28"
    assert api_version_for("/locations/abc") == "2021-07-28"
    assert api_version_for("/conversations/messages/outbound") == "2021-04-15"
    assert api_version_for("/conversations") == "2021-04-15"
    assert api_version_for("/contactsfoo") == "2021-07-28"  # default


# -- the fake enforces the spec ----------------------------------------------------------------


async def raw_request(ghl, session, method, path, *, headers=None, **kwargs):
    base_headers = {"Authorization": f"Bearer {ghl.token}", "Version": "2021-07-28"}
    base_headers.update(headers or {})
    async with session.request(method, ghl.base_url + path, headers=base_headers, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_wrong_version_header_is_a_spec_violation(ghl, session):
    status, body = await raw_request(
        ghl,
        session,
        "GET",
        "/contacts/search/duplicate",
        params={"locationId": ghl.location_id, "number": PHONE},
        headers={"Version": "2021-04-15"},
    )
    assert status == 422
    assert "Version" in json.dumps(body)
    assert len(ghl.violations) == 1
    assert "Version" in ghl.violations[0]
    ghl.violations.clear()


async def test_conversations_need_their_own_version(ghl, session):
    status, _ = await raw_request(
        ghl, session, "GET", "/conversations/search", params={"locationId": ghl.location_id}
    )
    assert status == 422  # 2021-07-28 is not valid for the conversations API
    assert any("Version" in v for v in ghl.violations)
    ghl.violations.clear()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/contacts/search/duplicate", {"params": {"number": PHONE}}, 422),  # locationId missing
        ("POST", "/contacts/upsert", {"json": {"phone": PHONE}}, 422),  # locationId missing
        ("POST", "/contacts/abc/tasks", {"json": {"title": "t"}}, 422),  # dueDate/completed missing
        ("POST", "/contacts/abc/tags", {"json": {"tags": "not-a-list"}}, 422),
        ("PATCH", "/contacts/abc", {"json": {}}, 404),  # no such operation
        ("GET", "/contacts/abc/nothing/here", {}, 404),  # no such path
    ],
)
async def test_invalid_requests_are_violations(ghl, session, method, path, kwargs, status):
    got, _ = await raw_request(ghl, session, method, path, **kwargs)
    assert got == status
    assert len(ghl.violations) == 1
    ghl.violations.clear()


async def test_missing_authorization_is_a_violation(ghl, session):
    async with session.get(
        ghl.base_url + f"/locations/{ghl.location_id}", headers={"Version": "2021-07-28"}
    ) as resp:
        assert resp.status == 401
    assert len(ghl.violations) == 1
    ghl.violations.clear()


async def test_every_response_has_rate_limit_headers(ghl, session):
    async with session.get(
        ghl.base_url + f"/locations/{ghl.location_id}",
        headers={"Authorization": f"Bearer {ghl.token}", "Version": "2021-07-28"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Max"] == "100"
        assert resp.headers["X-RateLimit-Remaining"] == "99"
        assert resp.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
        assert resp.headers["X-RateLimit-Limit-Daily"] == "200000"
        assert resp.headers["X-RateLimit-Daily-Remaining"] == "199999"


# -- error mapping -----------------------------------------------------------------------------


async def test_wrong_token_is_auth_error(ghl, session, attempts):
    client = make_client(ghl, session, attempts, token="pit-wrong")
    with pytest.raises(AuthError) as info:
        await client.get_location()
    assert info.value.status == 401
    assert info.value.retryable is False
    assert "fix your token" in str(info.value)
    assert attempts[0].status == 401
    assert attempts[0].error and "fix your token" in attempts[0].error


async def test_foreign_location_is_auth_error(ghl, session):
    client = make_client(ghl, session, location_id="someOtherLocation123")
    with pytest.raises(AuthError) as info:
        await client.get_location()
    assert info.value.status == 403
    with pytest.raises(AuthError):
        await client.find_contact_by_phone(PHONE)


@pytest.mark.parametrize("status", [401, 403])
async def test_injected_auth_failures(ghl, client, status):
    ghl.inject("lookup", Fault.status(status))
    with pytest.raises(AuthError) as info:
        await client.find_contact_by_phone(PHONE)
    assert info.value.status == status
    assert not info.value.retryable


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_are_permanent(ghl, client, status):
    contact = ghl.add_contact(PHONE)
    ghl.inject("note", Fault.status(status))
    with pytest.raises(PermanentError) as info:
        await client.add_note(contact["id"], "x")
    assert info.value.status == status
    assert info.value.retryable is False
    assert ghl.notes.get(contact["id"]) is None


async def test_unknown_contact_is_permanent(client):
    with pytest.raises(PermanentError) as info:
        await client.get_contact("doesNotExist00000000")
    assert info.value.status == 400
    assert "Contact not found" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_are_transient(ghl, client, attempts, status):
    ghl.inject("lookup", Fault.status(status))
    with pytest.raises(TransientError) as info:
        await client.find_contact_by_phone(PHONE)
    assert not isinstance(info.value, UnknownOutcome)
    assert info.value.status == status
    assert info.value.retryable is True
    assert attempts[-1].status == status
    assert attempts[-1].error


async def test_faults_are_consumed_in_order(ghl, client, attempts):
    contact = ghl.add_contact(PHONE)
    ghl.inject("note", Fault.status(500), Fault.status(502))
    for expected in (500, 502):
        with pytest.raises(TransientError) as info:
            await client.add_note(contact["id"], "x")
        assert info.value.status == expected
    await client.add_note(contact["id"], "x")
    assert len(ghl.notes[contact["id"]]) == 1
    assert [a.status for a in attempts] == [500, 502, 201]
    assert ghl.pending_faults == 0


async def test_faults_by_path_regex(ghl, client):
    contact = ghl.add_contact(PHONE)
    ghl.inject(r"^DELETE /contacts/[^/]+/tags$", Fault.status(503))
    await client.add_tags(contact["id"], ["a"])  # POST does not match
    with pytest.raises(TransientError):
        await client.remove_tags(contact["id"], ["a"])
    assert ghl.contacts[contact["id"]]["tags"] == ["a"]


async def test_read_timeout_is_transient(ghl, session):
    client = make_client(ghl, session, timeout=0.3)
    ghl.inject("lookup", Fault.timeout(1.0))
    with pytest.raises(TransientError) as info:
        await client.find_contact_by_phone(PHONE)
    assert not isinstance(info.value, UnknownOutcome)
    assert info.value.status is None


async def test_write_timeout_is_unknown_outcome(ghl, session, attempts):
    client = make_client(ghl, session, attempts, timeout=0.3)
    contact = ghl.add_contact(PHONE)
    ghl.inject("note", Fault.timeout(0.8))
    with pytest.raises(UnknownOutcome) as info:
        await client.add_note(contact["id"], "slow")
    assert info.value.retryable is True
    assert attempts[-1].status is None
    assert "timeout" in attempts[-1].error
    # the server applied the write after the client gave up: hence "re-check before retrying"
    await ghl.quiet()
    assert [n["body"] for n in ghl.notes[contact["id"]]] == ["slow"]


async def test_empty_201_is_unknown_outcome(ghl, client, attempts):
    contact = ghl.add_contact(PHONE)
    ghl.inject("note", Fault.empty_201())
    with pytest.raises(UnknownOutcome) as info:
        await client.add_note(contact["id"], "maybe")
    assert info.value.status == 201
    assert attempts[-1].status == 201
    assert attempts[-1].response_body == ""
    # the write did happen: a caller must re-check (list_notes) before sending it again
    notes = await client.list_notes(contact["id"])
    assert [n["body"] for n in notes] == ["maybe"]


async def test_empty_201_on_tags_and_task(ghl, client):
    contact = ghl.add_contact(PHONE)
    ghl.inject("tags.add", Fault.empty_201())
    ghl.inject("task", Fault.empty_201())
    with pytest.raises(UnknownOutcome):
        await client.add_tags(contact["id"], ["called"])
    with pytest.raises(UnknownOutcome):
        await client.create_task(contact["id"], "t", "b", "2026-06-05T15:00:00Z")
    assert ghl.contacts[contact["id"]]["tags"] == ["called"]
    assert len(ghl.tasks[contact["id"]]) == 1


async def test_unparseable_body_on_a_read_is_transient(ghl, client):
    ghl.inject("lookup", Fault.raw(200, "<html>oops"))
    with pytest.raises(TransientError) as info:
        await client.find_contact_by_phone(PHONE)
    assert not isinstance(info.value, UnknownOutcome)


async def test_unparseable_body_on_a_write_is_unknown_outcome(ghl, client):
    ghl.inject("upsert", Fault.raw(200, '{"new": tr'))
    with pytest.raises(UnknownOutcome):
        await client.upsert_contact(PHONE)
    assert ghl.contact_by_phone(PHONE) is not None


async def test_unexpected_shape(ghl, client, attempts):
    contact = ghl.add_contact(PHONE)
    ghl.inject("lookup", Fault.raw(200, '{"contacts": []}'))
    with pytest.raises(PermanentError):
        await client.find_contact_by_phone(PHONE)
    ghl.inject("note", Fault.raw(201, "{}"))
    with pytest.raises(UnknownOutcome):
        await client.add_note(contact["id"], "x")
    assert [a.status for a in attempts] == [200, 201]
    assert all("unexpected response shape" in a.error for a in attempts)


async def test_dropped_connection(ghl, client):
    contact = ghl.add_contact(PHONE)
    await client.get_location()  # so the next request reuses a pooled connection
    # aiohttp resends an idempotent request once when a reused connection drops: drop both
    ghl.inject("lookup", Fault.disconnect(), Fault.disconnect())
    with pytest.raises(TransientError) as info:
        await client.find_contact_by_phone(PHONE)
    assert not isinstance(info.value, UnknownOutcome)
    assert ghl.pending_faults == 0
    ghl.inject("note", Fault.disconnect(perform=True))
    with pytest.raises(UnknownOutcome):
        await client.add_note(contact["id"], "lost answer")
    assert len(ghl.notes[contact["id"]]) == 1


async def test_connection_refused_is_transient_even_for_writes(session, attempts):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GhlClient(
        session,
        base_url=f"http://127.0.0.1:{port}",
        token="t",
        location_id="L",
        on_attempt=attempts.append,
        timeout=2.0,
    )
    with pytest.raises(TransientError) as info:
        await client.add_note("c1", "x")
    assert not isinstance(info.value, UnknownOutcome)
    assert attempts[0].status is None
    assert "connection failed" in attempts[0].error


async def test_outage_and_heal(ghl, client):
    ghl.fail_all(503)
    for _ in range(3):
        with pytest.raises(TransientError):
            await client.get_location()
    ghl.heal()
    assert (await client.get_location())["id"] == ghl.location_id


# -- rate limiting -------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds(ghl, session):
    limiter = TokenBucket("100/10s")
    client = make_client(ghl, session, limiter=limiter)
    ghl.inject("lookup", Fault.rate_limited(retry_after=1))
    before = time.monotonic()
    with pytest.raises(RateLimited) as info:
        await client.find_contact_by_phone(PHONE)
    assert info.value.retry_after_seconds == 1.0
    assert info.value.daily_exhausted is False
    assert info.value.retryable is True
    assert info.value.status == 429
    # the limiter holds every caller for that long
    assert limiter.paused_until is not None
    assert limiter.paused_until == pytest.approx(before + 1.0, abs=0.5)
    await client.find_contact_by_phone(PHONE)
    assert time.monotonic() - before >= 0.95
    assert ghl.count_429 == 1


async def test_429_with_retry_after_http_date(ghl, client):
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    ghl.inject("lookup", Fault.rate_limited(retry_after=format_datetime(when, usegmt=True)))
    with pytest.raises(RateLimited) as info:
        await client.find_contact_by_phone(PHONE)
    assert 25 <= info.value.retry_after_seconds <= 31


async def test_429_without_retry_after_uses_interval_header(ghl, client):
    ghl.inject("lookup", Fault.rate_limited(retry_after=None))
    with pytest.raises(RateLimited) as info:
        await client.find_contact_by_phone(PHONE)
    assert info.value.retry_after_seconds == 10.0  # X-RateLimit-Interval-Milliseconds: 10000
    assert info.value.daily_exhausted is False


async def test_real_burst_429_from_the_fake(ghl, session):
    limiter = TokenBucket("100/10s")
    client = make_client(ghl, session, limiter=limiter)
    ghl.configure_rate("3/10s")
    for _ in range(3):
        await client.find_contact_by_phone(PHONE)
    assert limiter.paused_until is None
    before = time.monotonic()
    with pytest.raises(RateLimited) as info:
        await client.find_contact_by_phone(PHONE)
    assert info.value.retry_after_seconds == 10.0  # X-RateLimit-Interval-Milliseconds of the 429
    assert info.value.daily_exhausted is False
    assert ghl.count_429 == 1
    # every later request waits out the burst window instead of being sent
    assert limiter.paused_until == pytest.approx(before + 10.0, abs=1.0)


async def test_daily_429_waits_until_utc_midnight(ghl, session):
    limiter = TokenBucket("100/10s")
    client = make_client(ghl, session, limiter=limiter)
    ghl.inject("lookup", Fault.rate_limited(retry_after=None, daily=True))
    with pytest.raises(RateLimited) as info:
        await client.find_contact_by_phone(PHONE)
    assert info.value.daily_exhausted is True
    assert info.value.retry_after_seconds == pytest.approx(seconds_to_utc_midnight(), abs=5)
    # the limiter now refuses locally, without touching the network
    sent = len(ghl.requests)
    with pytest.raises(RateLimited) as again:
        await client.find_contact_by_phone(PHONE)
    assert again.value.daily_exhausted is True
    assert again.value.status is None
    assert len(ghl.requests) == sent


async def test_daily_reset_header_is_used_when_present(ghl, client):
    ghl.send_daily_reset = True
    ghl.configure_rate("100/10s", daily_limit=1)
    await client.get_location()
    with pytest.raises(RateLimited) as info:
        await client.get_location()
    assert info.value.daily_exhausted is True
    assert info.value.retry_after_seconds == pytest.approx(seconds_to_utc_midnight(), abs=5)


async def test_daily_remaining_zero_on_success_pauses_the_limiter(ghl, session):
    ghl.configure_rate("100/10s", daily_limit=2)
    limiter = TokenBucket("100/10s")
    client = make_client(ghl, session, limiter=limiter)
    await client.get_location()
    assert limiter.paused_until is None
    await client.get_location()  # answered with X-RateLimit-Daily-Remaining: 0
    assert limiter.paused_until == pytest.approx(time.monotonic() + seconds_to_utc_midnight(), abs=5)
    with pytest.raises(RateLimited) as info:
        await client.get_location()
    assert info.value.daily_exhausted is True
    assert len(ghl.requests) == 2
    assert ghl.count_429 == 0


async def test_local_daily_budget(ghl, session):
    limiter = TokenBucket("100/10s", daily_limit=2)
    client = make_client(ghl, session, limiter=limiter)
    await client.get_location()
    await client.get_location()
    with pytest.raises(RateLimited) as info:
        await client.get_location()
    assert info.value.daily_exhausted is True
    assert len(ghl.requests) == 2


async def test_on_attempt_errors_do_not_break_requests(ghl, session):
    def explode(attempt):
        raise RuntimeError("logger broke")

    client = make_client(ghl, session, on_attempt=explode)
    assert (await client.get_location())["id"] == ghl.location_id


async def test_response_bodies_in_attempts_are_truncated(ghl, client, attempts):
    ghl.inject("lookup", Fault.status(500, {"statusCode": 500, "message": "x" * 5000}))
    with pytest.raises(TransientError):
        await client.find_contact_by_phone(PHONE)
    assert len(attempts[0].response_body) == 2000


def test_copied_spec_files_match_their_recorded_checksums():
    root = Path(__file__).resolve().parents[1] / "fakes" / "ghl_openapi"
    recorded = dict(
        (path, digest)
        for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", (root / "README.md").read_text(), re.M)
    )
    assert set(recorded) == {
        "apps/contacts.json",
        "apps/conversations.json",
        "apps/locations.json",
        "common/common-schemas.json",
    }
    for path, digest in recorded.items():
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == digest, path
