"""Delivers alert jobs from the outbox: actions (HTTP requests to the dialer), Apprise notifications and
the signed webhook.

Its own loop, claims and leases (``kind <> 'crm'`` jobs), so it never waits on the CRM: alerts go out
when the CRM is unconfigured, paused or backlogged.  Each try is a delivery log row; 5xx, 408, 425, 429,
timeouts and connection errors retry on ``[alerts] retry_schedule`` (±20 % jitter, ``Retry-After``
honoured), then the job is a dead letter; other 4xx and configuration problems are dead at once.  A job
whose worker died (kill -9) is taken again when its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from connector import secrets
from connector.automations import delivery
from connector.automations.settings import AlertSettings, AutomationSettings
from connector.store import alerts as store

log = logging.getLogger(__name__)

JITTER = 0.2
RETRYABLE = frozenset({408, 425, 429})
RESPONSE_MAX = 500
POLL_SECONDS = 2.0


def backoff(failures: int, schedule: list[float], rng: random.Random) -> float | None:
    """Delay before the next try after ``failures`` failed tries; None when the schedule is used up."""
    if failures > len(schedule):
        return None
    return schedule[failures - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


class Dispatcher:
    def __init__(self, writer: Any, settings: Callable[[], AutomationSettings], *, clock: Callable[[], float] = time.time,
                 concurrency: int = 4, lease_seconds: float = 60.0, rng: random.Random | None = None) -> None:
        self.writer = writer
        self.settings = settings
        self.clock = clock
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.rng = rng or random.Random()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0

    def notify(self) -> None:
        """Thread-safe: new alert jobs may be due."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._session = aiohttp.ClientSession()
        released = await self.writer.execute(lambda db: store.release_leases(db, self.clock()))
        if released:
            log.warning("alerts: %d delivery(ies) interrupted by the last stop are tried again", released)
        self._task = asyncio.create_task(self._run(), name="alert-dispatch")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._jobs) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                while len(self._jobs) < self.concurrency:
                    job = await self.writer.execute(lambda db: store.claim(db, self.clock(), self.lease_seconds))
                    if job is None:
                        break
                    task = asyncio.create_task(self._deliver(job))
                    self._jobs.add(task)
                    task.add_done_callback(self._done)
                due = await self.writer.execute(lambda db: store.next_due(db, self.clock()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage trouble: try again shortly
                log.warning("alerts: could not claim a delivery: %s", exc)
                due = self.clock() + 1.0
            # Jobs replayed by another process (`callsync replay --dead`) are found by looking again.
            wait = POLL_SECONDS if due is None else min(POLL_SECONDS, max(0.05, due - self.clock()))
            if len(self._jobs) >= self.concurrency:
                wait = 30.0  # a finished delivery wakes the loop
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        if self._wake is not None:
            self._wake.set()

    async def _deliver(self, job: dict[str, Any]) -> None:
        started = self.clock()
        kind, alert = job["kind"], job["alert"]
        attempt: tuple[Any, ...] | None = None
        try:
            if alert is None:
                raise delivery.Undeliverable("the alert is not in the store")
            attempt, status, retry_after = await self._send(kind, job["sink"], alert, started)
            outcome, error = self._judge(status, attempt)
        except delivery.Undeliverable as exc:
            outcome, error, retry_after = "dead", str(exc), None
            attempt = attempt or (started, job["sink"], None, None, None, None, 0.0, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - unknown failure: retried like a 5xx
            log.exception("alerts: delivering %s failed", job["call_id"])
            outcome, error, retry_after = "retry", f"{type(exc).__name__}: {exc}", None
        now = self.clock()
        retry_at = None
        if outcome == "retry":
            delay = backoff(int(job["failures"]) + 1, self.settings().alerts.retry_schedule, self.rng)
            if delay is None:
                outcome, error = "dead", f"gave up after {int(job['failures']) + 1} tries: {error}"
            else:
                retry_at = now + max(delay, retry_after or 0.0)
        if outcome == "done":
            self.delivered += 1
        else:
            log.warning("alerts: %s %s: %s", job["call_id"], "will retry" if outcome == "retry" else "is dead", error)
        try:
            await self.writer.execute(lambda db: store.finish(db, job["id"], now, attempt, outcome=outcome,
                                                              retry_at=retry_at, error=error))
        except Exception as exc:  # noqa: BLE001 - the lease expires and the job is taken again
            log.warning("alerts: could not record the delivery of %s: %s", job["call_id"], exc)

    @staticmethod
    def _judge(status: int | None, attempt: tuple[Any, ...]) -> tuple[str, str | None]:
        if status is not None and 200 <= status < 300:
            return "done", None
        error = attempt[-1] or f"answered {status}"
        if status is None or status >= 500 or status in RETRYABLE:
            return "retry", error
        return "dead", error

    async def _send(self, kind: str, sink: str, alert: dict[str, Any],
                    started: float) -> tuple[tuple[Any, ...], int | None, float | None]:
        """One try: ``(delivery log row, HTTP status or None, Retry-After seconds)``."""
        settings = self.settings()
        if kind == "notify":
            url = delivery.notify_url(settings, sink.partition(":")[2])
            loop = asyncio.get_running_loop()
            sent, shown, why = await loop.run_in_executor(
                None, delivery.apprise_send, url, alert, settings.alerts.timeout_seconds)
            took = (self.clock() - started) * 1000
            error = None if sent else (why or "the notification was not sent")
            return (started, "notify", "APPRISE", shown, 200 if sent else None, None, took, error), \
                200 if sent else None, None
        if kind == "webhook":
            alerts: AlertSettings = settings.alerts
            if not alerts.webhook_url:
                raise delivery.Undeliverable("[alerts] webhook_url is no longer configured")
            request = delivery.webhook_request(alerts.webhook_url, alert,
                                               secrets.cached_secret(AlertSettings.WEBHOOK_SECRET_USER), self.clock())
            timeout = alerts.timeout_seconds
        else:
            name = sink.partition(":")[2]
            action = settings.actions.get(name)
            if action is None:
                raise delivery.Undeliverable(f"the action {name} is no longer configured ([actions.{name}])")
            secret = secrets.cached_secret(action.secret_user) if action.uses_secret else None
            request = delivery.action_request(action, alert, secret)
            timeout = action.timeout_seconds
        return await self._http(kind if kind == "webhook" else sink, request, timeout, started)

    async def _http(self, kind: str, request: delivery.Request, timeout: float,
                    started: float) -> tuple[tuple[Any, ...], int | None, float | None]:
        assert self._session is not None
        try:
            async with self._session.request(request.method, request.url, headers=request.headers, data=request.body,
                                             timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as resp:
                text = (await resp.text(errors="replace"))[:RESPONSE_MAX]
                status = resp.status
                retry_after = _seconds(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            took = (self.clock() - started) * 1000
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return (started, kind, request.method, request.shown_url, None, None, took, error), None, None
        took = (self.clock() - started) * 1000
        error = None if 200 <= status < 300 else f"answered {status}"
        return (started, kind, request.method, request.shown_url, status, text, took, error), status, retry_after


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
