"""Hammering the fake GHL through the client: the limiter at the server's own limit never gets a 429."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from connector.sync.crm import GhlClient, RateLimited, TokenBucket

RATE = "20/0.5s"  # GHL's 100/10s, scaled down so the test takes seconds
PHONES = [f"+1503555{n:04d}" for n in range(100)]


@pytest.fixture
async def session():
    # a large pool so concurrency is not limited by the connector
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as s:
        yield s


async def hammer(client: GhlClient, phones: list[str], concurrency: int) -> list[object]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for phone in phones:
        queue.put_nowait(phone)
    results: list[object] = []

    async def worker():
        while not queue.empty():
            phone = queue.get_nowait()
            try:
                results.append(await client.find_contact_by_phone(phone))
            except RateLimited as exc:
                results.append(exc)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def test_limiter_at_the_server_limit_never_triggers_429(ghl, session):
    ghl.configure_rate(RATE)
    for phone in PHONES[::10]:
        ghl.add_contact(phone)
    limiter = TokenBucket(RATE)
    client = GhlClient(
        session, base_url=ghl.base_url, token=ghl.token, location_id=ghl.location_id, limiter=limiter, timeout=5.0
    )
    started = time.monotonic()
    results = await hammer(client, PHONES, concurrency=16)
    elapsed = time.monotonic() - started

    assert ghl.count_429 == 0
    assert not [r for r in results if isinstance(r, Exception)]
    assert len(ghl.requests) == 100
    assert sum(1 for r in results if r is not None) == 10
    # 100 requests at 20 per 0.5 s need at least 4 full windows after the first burst
    assert elapsed >= 4 * 0.5
    assert elapsed < 10


async def test_without_a_limiter_the_fake_answers_429(ghl, session):
    """Control: the same load without the limiter does overrun the fake's window."""
    ghl.configure_rate(RATE)
    client = GhlClient(session, base_url=ghl.base_url, token=ghl.token, location_id=ghl.location_id, timeout=5.0)
    results = await hammer(client, PHONES[:60], concurrency=16)
    assert ghl.count_429 > 0
    assert sum(1 for r in results if isinstance(r, RateLimited)) == ghl.count_429
