"""Client-side request limiter that a sliding-window server never rejects.

GoHighLevel allows 100 requests per 10 s per app and location (a burst limit)
plus a daily budget, and answers 429 beyond that.  A classic token bucket
(capacity N, refill N/W) lets 2N requests through in a little more than one
window: N from the full bucket and N more as it refills, which a server
counting a sliding window of W rejects.  :class:`TokenBucket` therefore keeps
a log of the last requests instead and grants a new one only when the
server's window cannot contain more than N of them.

Why it is safe, whatever the latency: the server sees request *i* at some
time ``r_i`` between the moment the client was granted it (``a_i``) and the
moment the client got the answer or gave up (``f_i``).  The limiter grants
request *k* at ``a_k`` only if at most N-1 earlier requests have an upper
bound ``f_i`` later than ``a_k - W'`` (a request still in flight counts as
"later than anything"), with ``W' = W * (1 + margin)``.  Suppose some window
of length W at the server held N+1 requests and let *k* be the one granted
last.  The N others arrived after ``r_k - W >= a_k - W > a_k - W'``, hence
each has ``f_i >= r_i > a_k - W'`` and all N were counted when *k* was
granted: contradiction.  The margin (1 % by default) only absorbs clock-rate
differences between client and server.

Callers release the permit when the response arrived (or the request failed)::

    async with await bucket.acquire():
        ...  # send the request and read the response

A permit never released is treated as finished ``max_hold`` seconds after it
was granted, so a forgotten release slows things down but cannot deadlock.

``pause_until`` stops every caller until a monotonic deadline (after a 429 or
when the server reports the daily budget exhausted).  ``daily_limit`` counts
grants per UTC day; when used up, ``acquire`` waits for the next UTC midnight,
or raises :class:`DailyLimitReached` with ``wait=False``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone

from .errors import DailyLimitReached

__all__ = ["DailyLimitReached", "Permit", "TokenBucket", "parse_rate"]

_RATE_RE = re.compile(
    r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(ms|msec|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hour|hours)\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {
    "ms": 0.001,
    "msec": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}


def parse_rate(rate: str) -> tuple[int, float]:
    """Parse ``"100/10s"``, ``"10/1s"``, ``"600/1m"``, ``"20/500ms"``, ``"5/s"`` into (count, window seconds)."""
    match = _RATE_RE.match(rate or "")
    if not match:
        raise ValueError(f"invalid rate {rate!r}: expected e.g. '100/10s', '10/1s' or '600/1m'")
    count = int(match.group(1))
    amount = float(match.group(2)) if match.group(2) not in ("", ".") else 1.0
    window = amount * _UNIT_SECONDS[match.group(3).lower()]
    if count <= 0 or window <= 0:
        raise ValueError(f"invalid rate {rate!r}: count and window must be positive")
    return count, window


class Permit:
    """One granted request slot; call :meth:`release` when the request is over."""

    __slots__ = ("_bucket", "granted_at", "finished_at")

    def __init__(self, bucket: TokenBucket, granted_at: float) -> None:
        self._bucket = bucket
        self.granted_at = granted_at
        self.finished_at: float | None = None

    def release(self) -> None:
        """Mark the request finished now (idempotent)."""
        if self.finished_at is None:
            self.finished_at = self._bucket._clock()
            self._bucket._released.set()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class TokenBucket:
    """Async limiter: at most ``capacity`` requests in any ``window`` seconds, plus a daily budget.

    The name is historical; the scheme is a sliding log (see the module docstring),
    which unlike a refilling bucket cannot burst past a sliding-window server.
    """

    def __init__(
        self,
        rate: str = "100/10s",
        *,
        daily_limit: int | None = None,
        margin: float = 0.01,
        max_hold: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity, self.window = parse_rate(rate)
        if margin < 0:
            raise ValueError("margin must be >= 0")
        if daily_limit is not None and daily_limit <= 0:
            raise ValueError("daily_limit must be positive or None")
        self.margin = margin
        self.daily_limit = daily_limit
        self.max_hold = max_hold
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._log: list[Permit] = []
        self._paused_until = -math.inf
        self._pause_is_daily = False
        self._day: date | None = None
        self._daily_used = 0
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()

    # -- public state -------------------------------------------------------

    @property
    def effective_window(self) -> float:
        """The window the limiter actually keeps: ``window * (1 + margin)``."""
        return self.window * (1.0 + self.margin)

    @property
    def paused_until(self) -> float | None:
        """Monotonic deadline of the current pause, or ``None`` when not paused."""
        return self._paused_until if self._paused_until > self._clock() else None

    @property
    def daily_used(self) -> int:
        self._roll_day()
        return self._daily_used

    @property
    def daily_remaining(self) -> int | None:
        if self.daily_limit is None:
            return None
        return max(0, self.daily_limit - self.daily_used)

    def in_flight(self) -> int:
        """Number of granted permits not yet released."""
        return sum(1 for p in self._log if p.finished_at is None)

    def next_daily_reset(self) -> datetime:
        """The next UTC midnight (when the daily budget is renewed)."""
        now = datetime.fromtimestamp(self._wall_clock(), tz=timezone.utc)
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)

    # -- control ------------------------------------------------------------

    def pause_until(self, monotonic_deadline: float, *, daily: bool = False) -> None:
        """Hold every caller until ``monotonic_deadline`` (a later pause wins; never shortens).

        ``daily=True`` marks the pause as daily-budget exhaustion, so that
        ``acquire(wait=False)`` raises :class:`DailyLimitReached` instead of waiting.
        """
        if monotonic_deadline > self._paused_until:
            self._paused_until = monotonic_deadline
            self._pause_is_daily = daily
        elif daily and monotonic_deadline == self._paused_until:
            self._pause_is_daily = True

    def resume(self) -> None:
        """Cancel a pause (takes effect for callers that start waiting afterwards)."""
        self._paused_until = -math.inf
        self._pause_is_daily = False

    def pause_for(self, seconds: float, *, daily: bool = False) -> None:
        self.pause_until(self._clock() + max(0.0, seconds), daily=daily)

    # -- acquiring ----------------------------------------------------------

    async def acquire(self, *, wait: bool = True) -> Permit:
        """Wait until a request may be sent and return its :class:`Permit`.

        With ``wait=False`` an exhausted daily budget (local counter, or a
        pause marked ``daily``) raises :class:`DailyLimitReached` at once;
        burst waits still happen, they are short.
        """
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    delay = self._paused_until - now
                    if not wait and self._pause_is_daily:
                        reset_at = datetime.fromtimestamp(self._wall_clock() + delay, tz=timezone.utc)
                        raise DailyLimitReached(reset_at, delay)
                    await self._sleep(delay)
                    continue
                if self.daily_limit is not None:
                    self._roll_day()
                    if self._daily_used >= self.daily_limit:
                        reset_at = self.next_daily_reset()
                        delay = max(0.0, reset_at.timestamp() - self._wall_clock())
                        if not wait:
                            raise DailyLimitReached(reset_at, delay)
                        # +1 ms so the wall clock is past midnight when re-checked.
                        await self._sleep(delay + 0.001)
                        continue
                delay = self._window_delay(now)
                if delay is None:
                    await self._wait_for_release(now)
                    continue
                if delay > 0:
                    await self._sleep(delay)
                    continue
                permit = Permit(self, now)
                self._log.append(permit)
                if self.daily_limit is not None:
                    self._daily_used += 1
                return permit

    # -- internals ----------------------------------------------------------

    def _upper_bound(self, permit: Permit, now: float) -> float:
        """Latest time the server can have seen this request."""
        if permit.finished_at is not None:
            return permit.finished_at
        expiry = permit.granted_at + self.max_hold
        return expiry if now >= expiry else math.inf

    def _window_delay(self, now: float) -> float | None:
        """Seconds to wait before the next grant; 0 = now; None = until a release."""
        horizon = now - self.effective_window
        self._log = [p for p in self._log if self._upper_bound(p, now) > horizon]
        if len(self._log) < self.capacity:
            return 0.0
        bounds = sorted(self._upper_bound(p, now) for p in self._log)
        # Need at most capacity-1 bounds above the horizon: wait until this one drops out.
        blocker = bounds[len(bounds) - self.capacity]
        if math.isinf(blocker):
            return None
        return max(blocker + self.effective_window - now, 0.0) or 1e-6

    async def _wait_for_release(self, now: float) -> None:
        expiries = [p.granted_at + self.max_hold for p in self._log if p.finished_at is None]
        timeout = max(min(expiries) - now, 0.0) + 1e-6 if expiries else 0.0
        self._released.clear()
        waiter = asyncio.ensure_future(self._released.wait())
        sleeper = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                if not task.done():
                    task.cancel()

    def _roll_day(self) -> None:
        today = datetime.fromtimestamp(self._wall_clock(), tz=timezone.utc).date()
        if today != self._day:
            self._day = today
            self._daily_used = 0
