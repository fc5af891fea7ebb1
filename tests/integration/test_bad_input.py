"""Property tests: arbitrary bodies, headers, signatures and content types never crash the
receiver, never get a 5xx (the store is healthy), and nothing unsigned is ever stored."""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET
from tests.signing import hmac_headers

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "",
    ]
)
SOURCES = st.sampled_from(["dialer", "dialer_ts", "std", "twilio", "unknown", "a" * 80])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=12,
)
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
BODIES = st.one_of(
    st.binary(max_size=512),
    JSONISH.map(lambda v: __import__("json").dumps(v).encode()),
    st.builds(lambda e, c: __import__("json").dumps({"event": e, "call_uuid": c}).encode(), st.text(max_size=20), st.text(max_size=10)),
)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def send(service, source: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/{source}", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status


async def event_count(service) -> int:
    return await service.reader.run(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])


@SETTINGS
@given(
    source=SOURCES,
    body=BODIES,
    content_type=CONTENT_TYPES,
    signature=HEADER_TEXT,
    extra=st.dictionaries(
        st.sampled_from(["X-Webhook-Timestamp", "webhook-id", "webhook-timestamp", "webhook-signature",
                         "X-Twilio-Signature", "X-Webhook-Signature"]),
        HEADER_TEXT,
        max_size=4,
    ),
)
async def test_unsigned_garbage_is_refused_with_4xx(service, source, body, content_type, signature, extra):
    before = await event_count(service)
    headers = {"Content-Type": content_type, "X-Webhook-Signature": signature} | extra
    status = await send(service, source, body, headers)
    assert 400 <= status < 500, status
    assert await event_count(service) == before


@SETTINGS
@given(body=BODIES, content_type=CONTENT_TYPES)
async def test_signed_garbage_never_gets_a_5xx(service, body, content_type):
    headers = hmac_headers(body, SECRET) | {"Content-Type": content_type}
    status = await send(service, "dialer", body, headers)
    assert status in (200, 400, 413, 415), status


@pytest.mark.parametrize("header", ["sha256=", "SHA256=", ""])
async def test_signature_prefixes(service, header):
    body = b'{"event":"agent.login","data":{"agent":"a"}}'
    status = await send(service, "dialer", body, hmac_headers(body, SECRET, prefix=header))
    assert status == 200
