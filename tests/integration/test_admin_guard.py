"""The admin API over real HTTP: foreign Host headers (DNS rebinding) and malformed bodies."""

from __future__ import annotations

import aiohttp
import pytest

from connector import secrets
from connector.sync.admin_routes import ADMIN_TOKEN_USER
from tests.conftest import SECRET
from tests.signing import dumps, hmac_headers


async def get(service, path: str, host: str | None) -> tuple[int, dict]:
    headers = {} if host is None else {"Host": host}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{service.admin_url}{path}", headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def post_raw(service, path: str, body: bytes, *, host: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {secrets.get_secret(ADMIN_TOKEN_USER)}", "Content-Type": "application/json"}
    if host is not None:
        headers["Host"] = host
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.admin_url}{path}", data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize("host", [
    "rebind.evil.example", "rebind.evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example:{port}",
    "127.0.0.2:{port}", "evil.example:{port}@127.0.0.1", "0.0.0.0:{port}", "[::2]:{port}", "",
])
async def test_foreign_host_is_refused_before_any_route(service, host):
    body = dumps({"event": "call.completed", "call_uuid": "secret-call", "from": "+12025550100"})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            event_id = (await r.json())["event_id"]
    host = host.format(port=service.admin_port)
    for path in (f"/api/events/{event_id}", "/api/events", "/healthz", "/api/dead", "/nope"):
        status, data = await get(service, path, host)
        assert status == 403, (path, status, data)
        assert "secret-call" not in str(data)
    status, _ = await post_raw(service, "/api/replay", b'{"dead": true}', host=host)
    assert status == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]",
                                  "[::1]:{port}", None])
async def test_loopback_hosts_are_served(service, host):
    status, data = await get(service, "/api/events", None if host is None else host.format(port=service.admin_port))
    assert status == 200 and "events" in data


@pytest.mark.parametrize("path", ["/api/replay", "/api/dead/discard"])
@pytest.mark.parametrize("body", [
    b"[]", b"not json", b"", b"\xff\xfe", b"null", b"3", b'"text"',
    b'{"job_ids": ["x"]}', b'{"job_ids": "12"}', b'{"job_ids": 5}', b'{"job_ids": [true]}', b'{"job_ids": [1.5]}',
    b'{"job_ids": [-1]}', b'{"job_ids": [100000000000000000000000000]}', b'{"job_ids": [{}]}',
])
async def test_malformed_admin_bodies_are_400_with_a_reason(service, path, body):
    status, data = await post_raw(service, path, body)
    assert status == 400, (status, data)
    assert data["error"]


async def test_well_formed_admin_bodies_still_work(service):
    assert await post_raw(service, "/api/replay", b'{"job_ids": [1, "2"]}') == (200, {"requeued": 0})
    assert await post_raw(service, "/api/dead/discard", b'{"job_ids": [1]}') == (200, {"discarded": 0})
    assert await post_raw(service, "/api/dead/discard", b"{}") == (200, {"discarded": 0})


@pytest.mark.parametrize("path", ["/api/events?before_id=99999999999999999999999", "/api/events/99999999999999999999999"])
async def test_out_of_range_ids_are_not_a_500(service, path):
    status, data = await get(service, path, None)
    assert status in (400, 404) and data["error"]
