"""TokenBucket: sliding-window safety, pauses and the daily budget, on virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.sync.crm.errors import DailyLimitReached
from connector.sync.crm.ratelimit import TokenBucket, parse_rate


class VirtualClock:
    """Monotonic + wall clock and an asyncio sleep that advance only when every task is blocked."""

    def __init__(self, wall_start: float = 1_780_000_000.0) -> None:
        self.now = 0.0
        self.wall_start = wall_start
        self._timers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    async def run(self, *coros):
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(30):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            if all(t.done() for t in tasks):
                break
            while self._timers and self._timers[0][2].cancelled():
                heapq.heappop(self._timers)
            if not self._timers:
                for t in tasks:
                    t.cancel()
                raise AssertionError("deadlock: every task waits and no timer is pending")
            due, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, due)
            future.set_result(None)
        return [t.result() for t in tasks]

    def bucket(self, rate: str, **kwargs) -> TokenBucket:
        return TokenBucket(rate, clock=self, wall_clock=self.wall, sleep=self.sleep, **kwargs)


def max_in_any_window(times: list[float], window: float) -> int:
    """Largest number of times inside any half-open window (t - window, t]."""
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/10s", (100, 10.0)),
        ("10/1s", (10, 1.0)),
        ("600/1m", (600, 60.0)),
        ("20/0.5s", (20, 0.5)),
        ("5/500ms", (5, 0.5)),
        ("5/s", (5, 1.0)),
        (" 1000 / 1h ", (1000, 3600.0)),
    ],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "100", "100/10", "0/10s", "10/0s", "-1/1s", "ten/1s", "10/1d"])
def test_parse_rate_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_rate(text)


# -- burst window ---------------------------------------------------------------------


def test_sequential_grants_never_exceed_n_per_window():
    clock = VirtualClock()
    bucket = clock.bucket("10/1s")
    grants: list[float] = []

    async def worker():
        for _ in range(55):
            async with await bucket.acquire():
                grants.append(clock())

    asyncio.run(clock.run(worker()))
    assert len(grants) == 55
    assert max_in_any_window(grants, 1.0) == 10
    # and it does not dawdle: 5 extra windows (with the 1 % margin) for 55 requests
    assert grants[-1] <= 5 * 1.01 + 1e-9
    # the first N go out at once
    assert grants[:10] == [0.0] * 10


def test_concurrent_grants_never_exceed_n_per_window():
    clock = VirtualClock()
    bucket = clock.bucket("20/0.5s")
    grants: list[float] = []

    async def worker(latency: float):
        for _ in range(25):
            permit = await bucket.acquire()
            grants.append(clock())
            await clock.sleep(latency)
            permit.release()

    asyncio.run(clock.run(*(worker(0.01 * i) for i in range(8))))
    assert len(grants) == 200
    assert max_in_any_window(grants, 0.5) <= 20


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=12),
    window=st.sampled_from([0.5, 1.0, 10.0]),
    workers=st.integers(min_value=1, max_value=6),
    latencies=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=12),
    arrival_fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_server_sliding_window_never_overflows_whatever_the_latency(
    capacity, window, workers, latencies, arrival_fraction
):
    """A server counting a sliding window of the same size sees at most N requests in it,
    wherever between grant and release each request reaches it."""
    clock = VirtualClock()
    bucket = clock.bucket(f"{capacity}/{window}s")
    arrivals: list[float] = []

    async def worker(offset: int):
        for i in range(3 * capacity // workers + 2):
            latency = latencies[(i + offset) % len(latencies)] * window
            permit = await bucket.acquire()
            granted = clock()
            await clock.sleep(latency)
            # the server saw it somewhere between grant and the answer
            arrivals.append(granted + arrival_fraction * (clock() - granted))
            permit.release()

    asyncio.run(clock.run(*(worker(w) for w in range(workers))))
    assert max_in_any_window(arrivals, window) <= capacity


def test_in_flight_permit_blocks_until_released():
    clock = VirtualClock()
    bucket = clock.bucket("2/1s")
    order: list[tuple[str, float]] = []

    async def scenario():
        first = await bucket.acquire()
        second = await bucket.acquire()

        async def third():
            await bucket.acquire()
            order.append(("third", clock()))

        async def finish():
            await clock.sleep(5.0)
            order.append(("release", clock()))
            first.release()
            await clock.sleep(10.0)
            second.release()

        await asyncio.gather(third(), finish())

    asyncio.run(clock.run(scenario()))
    # Both earlier requests may still reach the server: the third waits for a release
    # (t=5) plus a whole window, since the released one may have arrived just at t=5.
    # The second is still in flight then; it and the third make only 2 in any window.
    assert order[0] == ("release", 5.0)
    assert order[1][0] == "third"
    assert order[1][1] == pytest.approx(5.0 + 1.01)


def test_forgotten_permit_expires_after_max_hold():
    clock = VirtualClock()
    bucket = clock.bucket("1/1s", max_hold=30.0)
    granted: list[float] = []

    async def scenario():
        await bucket.acquire()  # never released
        granted.append(clock())
        await bucket.acquire()
        granted.append(clock())

    asyncio.run(clock.run(scenario()))
    assert granted[0] == 0.0
    assert granted[1] == pytest.approx(30.0 + 1.01, abs=1e-3)
    assert bucket.in_flight() == 1  # the expired one is no longer tracked


def test_permit_context_managers_release():
    clock = VirtualClock()
    bucket = clock.bucket("5/1s")

    async def scenario():
        async with await bucket.acquire() as permit:
            assert bucket.in_flight() == 1
        assert permit.finished_at == 0.0
        with await bucket.acquire():
            pass
        assert bucket.in_flight() == 0

    asyncio.run(clock.run(scenario()))


# -- pauses ------------------------------------------------------------------------------


def test_pause_until_holds_everyone_and_never_shortens():
    clock = VirtualClock()
    bucket = clock.bucket("100/10s")
    grants: list[float] = []

    async def scenario():
        bucket.pause_until(7.0)
        bucket.pause_until(3.0)  # an earlier deadline does not shorten the pause
        assert bucket.paused_until == 7.0

        async def one():
            async with await bucket.acquire():
                grants.append(clock())

        await asyncio.gather(*(one() for _ in range(3)))

    asyncio.run(clock.run(scenario()))
    assert grants == [7.0, 7.0, 7.0]
    assert bucket.paused_until is None


def test_resume_cancels_a_pause():
    clock = VirtualClock()
    bucket = clock.bucket("100/10s")

    async def scenario():
        bucket.pause_for(60)
        bucket.resume()
        await bucket.acquire()
        return clock()

    assert asyncio.run(clock.run(scenario())) == [0.0]


def test_daily_pause_raises_when_not_waiting():
    clock = VirtualClock()
    bucket = clock.bucket("100/10s")

    async def scenario():
        bucket.pause_for(3600, daily=True)
        with pytest.raises(DailyLimitReached) as info:
            await bucket.acquire(wait=False)
        assert info.value.retry_after_seconds == pytest.approx(3600)
        # a burst pause is waited out even with wait=False
        bucket.resume()
        bucket.pause_for(2)
        await bucket.acquire(wait=False)
        return clock()

    assert asyncio.run(clock.run(scenario())) == [2.0]


# -- daily budget --------------------------------------------------------------------------


def _wall_at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_daily_limit_raises_with_reset_time_when_not_waiting():
    clock = VirtualClock(wall_start=_wall_at("2026-06-04T23:59:50"))
    bucket = clock.bucket("100/10s", daily_limit=3)

    async def scenario():
        for _ in range(3):
            (await bucket.acquire(wait=False)).release()
        assert bucket.daily_remaining == 0
        with pytest.raises(DailyLimitReached) as info:
            await bucket.acquire(wait=False)
        return info.value

    (error,) = asyncio.run(clock.run(scenario()))
    assert error.reset_at == datetime(2026, 6, 5, tzinfo=timezone.utc)
    assert error.retry_after_seconds == pytest.approx(10.0)


def test_daily_limit_waits_for_utc_midnight():
    clock = VirtualClock(wall_start=_wall_at("2026-06-04T23:59:50"))
    bucket = clock.bucket("100/10s", daily_limit=2)
    grants: list[float] = []

    async def scenario():
        for _ in range(3):
            async with await bucket.acquire():
                grants.append(clock())

    asyncio.run(clock.run(scenario()))
    assert grants[:2] == [0.0, 0.0]
    assert grants[2] == pytest.approx(10.0, abs=0.01)
    assert datetime.fromtimestamp(clock.wall(), tz=timezone.utc).date().isoformat() == "2026-06-05"
    assert bucket.daily_used == 1


def test_daily_counter_resets_on_a_new_utc_day():
    clock = VirtualClock(wall_start=_wall_at("2026-06-04T12:00:00"))
    bucket = clock.bucket("100/10s", daily_limit=5)

    async def scenario():
        for _ in range(4):
            (await bucket.acquire()).release()
        assert bucket.daily_used == 4
        clock.now += 13 * 3600  # next day
        assert bucket.daily_used == 0
        assert bucket.daily_remaining == 5

    asyncio.run(clock.run(scenario()))


def test_constructor_validation():
    with pytest.raises(ValueError):
        TokenBucket("10/1s", daily_limit=0)
    with pytest.raises(ValueError):
        TokenBucket("10/1s", margin=-0.1)
    bucket = TokenBucket("100/10s")
    assert bucket.capacity == 100
    assert bucket.window == 10.0
    assert bucket.effective_window == pytest.approx(10.1)
    assert bucket.daily_remaining is None
