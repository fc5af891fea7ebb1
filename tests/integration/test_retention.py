"""Retention: raw payloads of old events are dropped through the writer; events, dedupe and calls stay."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from connector import config as config_module
from connector.app import Service
from connector.config import ConfigError, parse_config
from tests.conftest import SECRET, make_config
from tests.integration.test_receiver import admin, post, unlimcall
from tests.signing import dumps, hmac_headers


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def aged(tmp_path, source_secrets):
    clock = Clock()
    svc = Service(make_config(tmp_path, extra={"retention": {"raw_payload_days": 30}}), clock=clock)
    await svc.start()
    yield svc, clock
    await svc.stop()


async def test_old_payloads_are_dropped_and_everything_else_keeps_working(aged, backend):
    svc, clock = aged
    old_bodies = [dumps(unlimcall(call_uuid=f"old-{i}")) for i in range(3)]
    for body in old_bodies:
        status, answer, _ = await post(svc, "dialer", body, hmac_headers(body, SECRET))
        assert status == 200 and answer["status"] == "stored"
    clock.now += 31 * 86400  # a month later
    fresh = dumps(unlimcall(call_uuid="fresh"))
    assert (await post(svc, "dialer", fresh, hmac_headers(fresh, SECRET)))[0] == 200

    assert await svc.retention.run_once() == 3
    assert await svc.retention.run_once() == 0  # nothing left to drop

    rows = dict(backend.query(svc.config.data_dir, "SELECT call_id, length(body) FROM events"))
    (kept_headers,), = backend.query(svc.config.data_dir, "SELECT COUNT(*) FROM events WHERE headers_json IS NOT NULL")
    assert rows == {"old-0": 0, "old-1": 0, "old-2": 0, "fresh": len(fresh)} and kept_headers == 1
    # Dedupe still knows the old events, their calls are intact, and the event list shows them.
    status, answer, _ = await post(svc, "dialer", old_bodies[0], hmac_headers(old_bodies[0], SECRET))
    assert (status, answer["status"]) == (200, "duplicate")
    status, call = await admin(svc, "/api/calls/dialer/old-1")
    assert status == 200 and call["outcome"] == "connected" and len(call["events"]) == 1
    status, event = await admin(svc, f"/api/events/{call['events'][0]['id']}")
    assert event["payload_dropped"] is True and event["body"] == "" and event["event"]["call_id"] == "old-1"
    status, metrics = await admin(svc, "/api/metrics")
    assert metrics["retention"]["dropped"] == 3 and metrics["store_bytes"] > 0


@pytest.mark.sqlite_only  # the SQLite file's pages; PostgreSQL's autovacuum reuses the space by itself
async def test_batches_are_small_and_space_goes_back_to_the_os(aged):
    svc, clock = aged
    from connector.store import retention

    payload = "x" * 1500  # rows that fit in a page: only a delete frees their pages, an update would not
    for i in range(retention.BATCH + 50):
        body = dumps(unlimcall(call_uuid=str(uuid.uuid4()), note=payload))
        assert (await post(svc, "dialer", body, hmac_headers(body, SECRET)))[0] == 200
    with sqlite3.connect(svc.config.db_path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental on a new store
        pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    clock.now += 31 * 86400
    batches_before = svc.writer.batches
    assert await svc.retention.run_once() == retention.BATCH + 50
    assert svc.writer.batches - batches_before >= 3  # two drop batches and the vacuum, not one long write
    with sqlite3.connect(svc.config.db_path) as conn:
        pages_after = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages_after < pages_before * 0.7


def test_retention_setting_is_checked():
    assert parse_config({}, config_module.Path("/tmp")).retention.raw_payload_days == 30
    assert parse_config({"retention": {"raw_payload_days": 0}}, config_module.Path("/tmp")).retention.raw_payload_days == 0
    for bad, words in (({"raw_payload_days": -1}, r"0 \(keep for ever\)"), ({"raw_payload_day": 3}, "did you mean"),
                       ({"raw_payload_days": "30"}, "must be int")):
        with pytest.raises(ConfigError, match=words):
            parse_config({"retention": bad}, config_module.Path("/tmp"))
