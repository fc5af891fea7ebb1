"""Real storage faults under a running service: the sender gets 503 + Retry-After within the ack
timeout, /healthz says what is wrong within about a second, and both recover when the fault ends.

Faults are real: a second process holding BEGIN EXCLUSIVE, a full tmpfs, an ext4 filesystem that
an error turned read-only, and an ext4 filesystem frozen with fsfreeze (tests/store_faults.py).
On PostgreSQL: another session holding a lock on the tables, a database set read-only, and the
database server stopped (kill -9 of its postmaster) and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from connector.app import Service
from tests.conftest import SECRET, make_config
from tests.signing import dumps, hmac_headers
from tests.store_faults import fail_ext4, fill_disk, frozen, loop_ext4, small_tmpfs, write_lock_held

pytestmark = pytest.mark.slow

ACK_TIMEOUT = 3.0
MARGIN = 2.0  # answers must come within ACK_TIMEOUT x MARGIN


def event_body(pad: int = 0) -> bytes:
    return dumps({"event": "call.completed", "call_uuid": str(uuid.uuid4()), "from": "+12025550100",
                  "to": "+12025550199", "direction": "outbound", "duration_seconds": 12, "notes": "x" * pad})


async def post(service: Service, body: bytes) -> tuple[int, dict, dict, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            return r.status, await r.json(content_type=None), dict(r.headers), time.monotonic() - started


async def healthz(service: Service) -> tuple[dict, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(f"{service.admin_url}/healthz") as r:
            return await r.json(), time.monotonic() - started


async def until_health(service: Service, ok: bool, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health, took = await healthz(service)
        assert took < 1.5, f"/healthz took {took:.1f} s"
        if health["ok"] is ok:
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"health never became ok={ok}: {health}")
        await asyncio.sleep(0.1)


async def start_service(data_dir, **server) -> Service:
    config = make_config(data_dir, sources={"dialer": {"kind": "hmac"}},
                         server={"ack_timeout_seconds": ACK_TIMEOUT} | server)
    service = Service(config)
    await service.start()
    return service


def assert_unavailable(answer: tuple[int, dict, dict, float]) -> None:
    status, data, headers, took = answer
    assert status == 503 and headers.get("Retry-After"), (status, data)
    assert data["reason"] in ("storage_error", "storage_timeout"), data
    assert took < ACK_TIMEOUT * MARGIN, f"answered after {took:.1f} s"


@contextlib.contextmanager
def store_locked(service: Service) -> Iterator[None]:
    """Another process (SQLite) or session (PostgreSQL) holds the write lock until the block ends."""
    if not service.target.url:
        with write_lock_held(service.config.db_path):
            yield
        return
    import psycopg

    with psycopg.connect(service.target.url) as other:  # a transaction, until the block ends
        other.execute("LOCK TABLE events, calls, jobs, stats_hourly IN EXCLUSIVE MODE")
        yield
        other.rollback()


async def test_locked_store_answers_503_in_time_for_a_burst_and_recovers(tmp_path, source_secrets, backend):
    service = await start_service(tmp_path)
    try:
        assert (await post(service, event_body()))[0] == 200
        bodies = [event_body() for _ in range(30)]
        with store_locked(service):
            answers = await asyncio.gather(*(post(service, body) for body in bodies))
            for answer in answers:
                assert_unavailable(answer)
            health = await until_health(service, ok=False)
            assert "locked" in health["reason"], health
        await until_health(service, ok=True)
        status, data, _, _ = await post(service, bodies[0])  # the sender's retry
        assert status == 200 and data["status"] in ("stored", "duplicate")
    finally:
        await service.stop()


@pytest.mark.sqlite_only  # the data dir's disk (PostgreSQL: test_read_only_database_...)
async def test_full_disk_answers_503_and_health_says_so(tmp_path, source_secrets):
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        service = await start_service(disk)
        try:
            assert (await post(service, event_body()))[0] == 200
            assert (await healthz(service))[0]["ok"]
            filler = fill_disk(disk)
            health = await until_health(service, ok=False)
            assert "full" in health["reason"], health
            body = event_body(pad=200_000)  # needs new pages in the WAL
            assert_unavailable(await post(service, body))
            filler.unlink()
            await until_health(service, ok=True)
            status, data, _, _ = await post(service, body)
            assert status == 200 and data["status"] in ("stored", "duplicate")
        finally:
            await service.stop()


@pytest.mark.sqlite_only  # the data dir's filesystem
async def test_read_only_filesystem_answers_503_and_health_says_so(tmp_path, source_secrets):
    with loop_ext4(tmp_path / "disk", tmp_path / "disk.img") as device:
        service = await start_service(tmp_path / "disk")
        try:
            assert (await post(service, event_body()))[0] == 200
            fail_ext4(device)  # ext4 with errors=remount-ro: from now on every write fails
            assert_unavailable(await post(service, event_body()))
            health = await until_health(service, ok=False)
            assert "read-only" in health["reason"].lower() or "i/o" in health["reason"].lower(), health
        finally:
            await service.stop()


@pytest.mark.sqlite_only  # the data dir's filesystem (PostgreSQL: test_stopped_database_server_...)
async def test_frozen_filesystem_answers_503_in_time_and_health_does_not_hang(tmp_path, source_secrets):
    with loop_ext4(tmp_path / "disk", tmp_path / "disk.img"):
        service = await start_service(tmp_path / "disk")
        try:
            assert (await post(service, event_body()))[0] == 200
            body = event_body()
            with frozen(tmp_path / "disk"):
                answers = await asyncio.gather(*(post(service, b) for b in (body, event_body(), event_body())))
                for answer in answers:
                    assert_unavailable(answer)
                health = await until_health(service, ok=False)
                assert "stuck" in health["reason"] or "did not answer" in health["reason"] \
                    or "not answered" in health["reason"], health
                assert_unavailable(await post(service, event_body()))  # still in time while it lasts
            await until_health(service, ok=True)
            status, data, _, _ = await post(service, body)  # the sender's retry: stored once
            assert status == 200 and data["status"] in ("stored", "duplicate")
        finally:
            await service.stop()


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # this session may still change things
        conn.execute(sql)


@pytest.mark.postgres_only
async def test_read_only_database_answers_503_and_health_says_so(tmp_path, source_secrets, backend):
    service = await start_service(tmp_path)
    from urllib.parse import urlsplit

    database = urlsplit(backend.url).path.strip("/")
    try:
        assert (await post(service, event_body()))[0] == 200
        _admin(backend.url, f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        _admin(backend.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        body = event_body()
        assert_unavailable(await post(service, body))
        health = await until_health(service, ok=False)
        assert "read-only" in health["reason"], health
        _admin(backend.url, f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        _admin(backend.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await until_health(service, ok=True)
        status, data, _, _ = await post(service, body)  # the sender's retry
        assert status == 200 and data["status"] == "stored"
    finally:
        await service.stop()


@pytest.mark.postgres_only
async def test_stopped_database_server_answers_503_in_time_and_recovers(tmp_path, source_secrets, backend):
    """The database server itself killed (-9) and started again, under a running callsync."""
    import os
    import signal as signals

    from tests.pg import Cluster, find_bindir

    cluster = Cluster(find_bindir())  # a server of its own: the session's keeps serving the other tests
    cluster.start()
    try:
        name, url = cluster.create_database()
        config = make_config(tmp_path, sources={"dialer": {"kind": "hmac"}}, server={"ack_timeout_seconds": ACK_TIMEOUT},
                             extra={"store": {"url": url}})
        service = Service(config)
        await service.start()
        try:
            assert (await post(service, event_body()))[0] == 200
            postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signals.SIGKILL)
            body = event_body()
            answers = await asyncio.gather(*(post(service, b) for b in (body, event_body())))
            for answer in answers:
                assert_unavailable(answer)
            health = await until_health(service, ok=False)
            assert "database" in health["reason"], health
            cluster.restart()
            await until_health(service, ok=True, timeout=30)
            status, data, _, _ = await post(service, body)  # the sender's retry: stored once
            assert status == 200 and data["status"] == "stored"
        finally:
            await service.stop()
    finally:
        cluster.stop()
