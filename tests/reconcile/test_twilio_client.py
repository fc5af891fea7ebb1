"""The Twilio REST client against the fake Twilio API built from Twilio's OpenAPI description: every
request it sends is validated (path, parameters and their formats, Basic auth)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import aiohttp
import pytest

from connector.reconcile.twilio_api import TwilioClient, TwilioError
from tests.fakes.twilio_fixture import twilio_api  # noqa: F401 - the fixture
from tests.fakes.twilio_server import Fault

T0 = datetime(2026, 11, 30, 14, 2, tzinfo=timezone.utc)


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake, *, user: str | None = None, password: str | None = None, **kwargs) -> TwilioClient:
    return TwilioClient(fake.account_sid, user or fake.account_sid, password or fake.credentials[fake.account_sid],
                        api_url=fake.url, **kwargs)


async def listed(api: TwilioClient, since: datetime) -> list[dict]:
    async with api:
        return [call async for call in api.list_calls(since)]


async def test_lists_every_call_since_a_time_through_every_page(twilio_api):
    old = twilio_api.add(start=T0 - timedelta(hours=2))
    wanted = [twilio_api.add(start=T0 + timedelta(minutes=m)) for m in range(5)]
    sleeps = Sleeps()
    calls = await listed(client(twilio_api, page_size=2, sleep=sleeps), T0)
    assert sorted(c["sid"] for c in calls) == sorted(c["sid"] for c in wanted)
    assert old["sid"] not in {c["sid"] for c in calls}
    first, *rest = twilio_api.requests
    assert first[0] == f"/2010-04-01/Accounts/{twilio_api.account_sid}/Calls.json"
    assert parse_qsl(first[1]) == [("StartTime>", "2026-11-30T14:02:00Z"), ("PageSize", "2")]
    assert len(rest) == 2  # pages 2 and 3 came from next_page_uri
    for _, query in rest:
        params = dict(parse_qsl(query))
        assert params["StartTime>"] == "2026-11-30T14:02:00Z" and params["PageToken"].startswith("PACA")
    assert sleeps == []


async def test_429_waits_as_asked_and_5xx_is_retried(twilio_api):
    twilio_api.add(start=T0)
    twilio_api.inject(Fault(429, retry_after="7"), Fault(503), Fault(500))
    sleeps = Sleeps()
    calls = await listed(client(twilio_api, sleep=sleeps), T0 - timedelta(minutes=1))
    assert len(calls) == 1
    assert sleeps == [7.0, 1.0, 2.0]  # Retry-After, then the backoff
    assert len(twilio_api.requests) == 4


async def test_5xx_without_end_gives_up_in_one_sentence(twilio_api):
    twilio_api.inject(*[Fault(502)] * 6)
    with pytest.raises(TwilioError) as caught:
        await listed(client(twilio_api, sleep=Sleeps(), backoff=(0.1, 0.2)), T0)
    assert str(caught.value) == "Twilio answered 502; gave up after 3 tries, the next run tries again."


async def test_wrong_credentials_are_one_sentence(twilio_api):
    with pytest.raises(TwilioError) as caught:
        await listed(client(twilio_api, password="not-the-token"), T0)
    assert caught.value.auth and caught.value.status == 401
    assert str(caught.value).startswith("Twilio refused the credentials (401): check account_sid")


async def test_an_api_key_authenticates_for_the_account(twilio_api):
    twilio_api.credentials["SK" + "5" * 32] = "api-key-secret"
    twilio_api.add(start=T0)
    calls = await listed(client(twilio_api, user="SK" + "5" * 32, password="api-key-secret"), T0)
    assert len(calls) == 1


async def test_fetches_one_call_or_none(twilio_api):
    call = twilio_api.add(start=T0, status="in-progress")
    async with client(twilio_api) as api:
        assert (await api.get_call(call["sid"]))["status"] == "in-progress"
        assert await api.get_call("CA" + "0" * 32) is None


async def test_unreachable_twilio_is_retried_then_one_sentence():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = TwilioClient("AC" + "1" * 32, "AC" + "1" * 32, "x", api_url=f"http://127.0.0.1:{port}", sleep=Sleeps(),
                       backoff=(0.0,))
    with pytest.raises(TwilioError) as caught:
        await listed(api, T0)
    assert str(caught.value).startswith("Twilio could not be reached (ClientConnectorError")
    assert api.requests == 2


async def test_the_fake_refuses_what_the_spec_does_not_allow(twilio_api):
    """The validation is real: a bare word as StartTime> or a page of 5000 are violations."""
    auth = aiohttp.BasicAuth(twilio_api.account_sid, twilio_api.credentials[twilio_api.account_sid])
    base = f"{twilio_api.url}/2010-04-01/Accounts/{twilio_api.account_sid}/Calls.json"
    async with aiohttp.ClientSession(auth=auth) as http:
        for query in ({"StartTime>": "yesterday"}, {"PageSize": "5000"}):
            async with http.get(base, params=query) as resp:
                assert resp.status == 400
    assert len(twilio_api.violations) == 2
    twilio_api.violations.clear()
