"""Downtime: the heartbeat's stretches, the gaps between them (table-driven), /api/metrics ``gaps`` with
the calls filled in during each, a sleep that starts a new stretch, and the dashboard's sentence."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from connector import secrets
from connector.app import Service
from connector.facade import Facade
from connector.reconcile.gaps import dashboard_notice, find_gaps, gap_sentence, with_counts
from connector.store import gaps as store
from tests.conftest import TWILIO_TOKEN, make_config
from tests.fakes.twilio_fixture import twilio_api  # noqa: F401 - the fixture

H = 3600.0


@pytest.mark.parametrize("stretches,since,expected", [
    ([], 0, []),
    ([(0, 100)], 0, []),
    ([(0, 100), (159, 300)], 0, []),  # 59 s: not a gap
    ([(0, 100), (160, 300)], 0, [(100, 160)]),  # 60 s: a gap
    ([(0, 100), (1000, 1100), (5000, 5100)], 0, [(100, 1000), (1100, 5000)]),
    ([(1000, 1100), (0, 100)], 0, [(100, 1000)]),  # order does not matter
    ([(0, 1000), (500, 2000), (1500, 3000), (4000, 4100)], 0, [(3000, 4000)]),  # overlapping processes merge
    ([(0, 100), (1000, 1100), (5000, 5100)], 1050, [(1100, 5000)]),  # older gaps left out
])
def test_find_gaps(stretches, since, expected):
    assert find_gaps(stretches, since=since) == expected


def test_counts_are_the_calls_reconciled_that_started_in_each_gap():
    reconciled = [("twilio", "fill", 150.0), ("twilio", "complete", 900.0), ("twilio", "fill", 1200.0),
                  ("twilio", "fill", 99.0)]
    assert with_counts([(100, 1000), (1100, 5000)], reconciled) == [
        {"from": 100, "to": 1000, "reconciled": 2}, {"from": 1100, "to": 5000, "reconciled": 1}]


def _local(hour: int, minute: int, day: int = 30) -> float:
    return datetime(2026, 11, day, hour, minute).timestamp()


@pytest.mark.parametrize("reconciling,others,n,expected", [
    (["twilio"], ["dialer"], 37, "callsync was off from 14:02 to 16:40; 37 calls filled in from Twilio; other sources "
                                 "cannot be back-filled — check their delivery logs"),
    (["twilio"], [], 1, "callsync was off from 14:02 to 16:40; 1 call filled in from Twilio"),
    ([], ["dialer"], 0, "callsync was off from 14:02 to 16:40; senders cannot be back-filled — check their delivery "
                        "logs for what they gave up on"),
    ([], [], 0, "callsync was off from 14:02 to 16:40"),
])
def test_the_dashboard_sentence(reconciling, others, n, expected):
    gap = {"from": _local(14, 2), "to": _local(16, 40), "reconciled": n}
    assert gap_sentence(gap, reconciling=reconciling, others=others, now=_local(17, 0)) == expected


def test_a_gap_of_another_day_names_the_day_and_old_gaps_are_not_on_the_dashboard():
    gap = {"from": _local(23, 10, 29), "to": _local(7, 5), "reconciled": 0}
    assert gap_sentence(gap, reconciling=[], others=[], now=_local(8, 0)) == \
        "callsync was off from Nov 29 23:10 to 07:05"
    assert dashboard_notice([gap], {}, now=_local(8, 0) + 25 * H) is None


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def metrics_gaps(svc: Service) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{svc.admin_url}/api/metrics") as resp:
            return (await resp.json())["gaps"]


async def test_a_stop_and_restart_is_a_gap_with_the_calls_filled_in_meanwhile(tmp_path, memory_keyring, twilio_api,
                                                                               backend):
    twilio_api.credentials[twilio_api.account_sid] = TWILIO_TOKEN
    secrets.set_secret("source:twilio", TWILIO_TOKEN)
    secrets.set_secret("source:dialer", "dialer-secret")
    t0 = float(int(time.time() - 3 * H))
    clock = Clock(t0)
    srcs = {"twilio": {"kind": "twilio", "reconcile": True, "account_sid": twilio_api.account_sid,
                       "api_url": twilio_api.url}, "dialer": {"kind": "hmac"}}
    first = Service(make_config(tmp_path, sources=srcs), clock=clock)
    await first.start()
    clock.t += 30
    await first.heartbeat.beat()
    clock.t += 10
    await first.stop()  # its last beat: t0 + 40
    twilio_api.add(start=datetime.fromtimestamp(t0 + H, timezone.utc))  # while callsync was off
    twilio_api.add(start=datetime.fromtimestamp(t0 - 2 * H, timezone.utc))  # before: not this gap's
    clock.t = t0 + 2 * H
    second = Service(make_config(tmp_path, sources=srcs), clock=clock)
    await second.start()
    try:
        deadline = time.monotonic() + 15
        while second.reconciler.runs.get("twilio", 0) < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await metrics_gaps(second) == [{"from": t0 + 40, "to": t0 + 2 * H, "reconciled": 1}]
        snap = await Facade(second).snapshot(fresh=True)
        today = datetime.fromtimestamp(clock.t).date()
        start, end = (datetime.fromtimestamp(t).strftime("%H:%M" if datetime.fromtimestamp(t).date() == today
                                                         else "%b %d %H:%M") for t in (t0 + 40, t0 + 2 * H))
        assert snap.gap_notice == (f"callsync was off from {start} to {end}; 1 call filled in from Twilio; other "
                                   "sources cannot be back-filled — check their delivery logs")
    finally:
        await second.stop()


async def test_a_late_beat_after_a_sleep_starts_a_new_stretch(tmp_path, memory_keyring, backend):
    clock = Clock(float(int(time.time() - H)))
    svc = Service(make_config(tmp_path, sources={}), clock=clock)
    await svc.start()
    try:
        began = clock.t
        clock.t += 5
        await svc.heartbeat.beat()
        clock.t += 300  # the machine slept
        await svc.heartbeat.beat()
        clock.t += 5
        await svc.heartbeat.beat()
        rows = await svc.reader.run(store.stretches, 0)
        assert rows == [(began, began + 5), (began + 305, began + 310)]
        assert await metrics_gaps(svc) == [{"from": began + 5, "to": began + 305, "reconciled": 0}]
    finally:
        await svc.stop()


async def test_without_gaps_the_metrics_say_so(service):
    assert await metrics_gaps(service) == []
    assert (await Facade(service).snapshot(fresh=True)).gap_notice is None
