"""The sync worker: claims outbox jobs and turns each finished call into GoHighLevel writes.

Never in the request path: it reads committed calls and writes its progress
through the store writer.  Each step of a job is recorded, so a retry, a replay
or a restart after a crash neither posts a second note nor counts a callback
twice (a step whose outcome is unknown is checked at the CRM before re-posting).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from connector import secrets
from connector.model import CallRecord
from connector.store.reader import StoreReader
from connector.store.writer import StoreWriter, Stored
from connector.sync import outbox
from connector.sync.crm.errors import AuthError, CrmError, PermanentError, RateLimited, UnknownOutcome
from connector.sync.crm.ghl import Attempt, GhlClient
from connector.sync.crm.ratelimit import TokenBucket
from connector.sync.rules import PlanError, plan_for
from connector.sync.settings import GhlSettings
from connector.sync.steps import ContactSteps

log = logging.getLogger(__name__)

JITTER = 0.2
TOKEN_USER = "crm:ghl"

_current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar("callsync_job", default=None)


def backoff(failures: int, schedule: list[float], rng: random.Random) -> float | None:
    """Delay before the next try after ``failures`` failed tries; None when retries are exhausted."""
    if failures > len(schedule):
        return None
    return schedule[failures - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


class SyncWorker(ContactSteps):
    def __init__(
        self,
        writer: StoreWriter,
        reader: StoreReader,
        settings: GhlSettings,
        *,
        token_for: Callable[[], str | None] = lambda: secrets.cached_secret(TOKEN_USER),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.settings = settings
        self.token_for = token_for
        self.clock = clock
        self.rng = rng or random.Random()
        self.limiter = TokenBucket(settings.rate_limit, daily_limit=settings.daily_limit)
        self.auth_error: str | None = None
        self.pause_reason: str | None = None
        self.paused_until: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._queued = False
        self._session: aiohttp.ClientSession | None = None
        self._client: GhlClient | None = None
        self._token: str | None = None
        self._field_ids: dict[str, str] | None = None
        self._field_ids_lock = asyncio.Lock()
        self._phone_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Metrics: the HTTP status of every CRM request (None: no answer), and receipt -> CRM seconds
        # of every completed job.
        self.attempt_observers: list[Callable[[int | None], None]] = []
        self.completion_observers: list[Callable[[float], None]] = []
        self._attempts: dict[int | None, list[tuple[Any, ...]]] = {}

    # -- lifecycle -----------------------------------------------------------
    def hook(self, stored: list[Stored]) -> list[tuple[str, str, float]]:
        """Store hook (writer thread): queue a job when a call reaches its outcome."""
        jobs = outbox.jobs_on_outcome(stored)
        if jobs:
            self._queued = True
        return jobs

    def after_commit(self) -> None:
        """Writer thread, after a commit: one wake-up per batch that queued work."""
        if self._queued:
            self._queued = False
            self.notify()

    def apply_settings(self, settings: GhlSettings) -> None:
        """Use new ``[crm.ghl]`` settings from now on (the window edits them while running)."""
        old = self.settings
        self.settings = settings
        if (old.location_id, old.base_url, old.timeout_seconds, old.custom_field_value_key) != (
            settings.location_id, settings.base_url, settings.timeout_seconds, settings.custom_field_value_key
        ):
            self._client = None  # bound to a location, URL and timeouts: build a new one
            self._token = None
        if (old.rate_limit, old.daily_limit) != (settings.rate_limit, settings.daily_limit):
            self.limiter = TokenBucket(settings.rate_limit, daily_limit=settings.daily_limit)
            self._client = None
        self.notify()

    def notify(self) -> None:
        """Thread-safe: new work may be due."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._dispatch(), name="sync-dispatch")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._task, *self._jobs) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self._task = None

    def state(self) -> dict[str, Any]:
        token = bool(self._token or self.token_for())
        return {
            "configured": self.settings.configured,
            "token": token,
            "auth_error": self.auth_error,
            "pause_reason": self.pause_reason,
            "paused_until": self.paused_until,
            "in_flight": len(self._jobs),
        }

    # -- dispatch ------------------------------------------------------------
    def _ensure_client(self) -> GhlClient | None:
        if not self.settings.configured:
            self.pause_reason = "CRM not configured"
            return None
        token = self.token_for()
        if not token:
            self.pause_reason = "no CRM token"
            return None
        if self._client is None or token != self._token:
            if token != self._token:
                self.auth_error = None  # a new token deserves a try
            assert self._session is not None
            self._token = token
            self._field_ids = None
            self._client = GhlClient(
                self._session,
                base_url=self.settings.base_url,
                token=token,
                location_id=self.settings.location_id,
                limiter=self.limiter,
                on_attempt=self._on_attempt,
                timeout=self.settings.timeout_seconds,
                custom_field_value_key=self.settings.custom_field_value_key,
            )
        if self.auth_error:
            self.pause_reason = self.auth_error
            return None
        now = self.clock()
        if self.paused_until and now < self.paused_until:
            return None
        self.paused_until = None
        self.pause_reason = None
        return self._client

    async def _dispatch(self) -> None:
        assert self._wake is not None
        slots = asyncio.Semaphore(self.settings.concurrency)
        while not self._stopping:
            await slots.acquire()
            self._wake.clear()
            job = None
            if self._ensure_client() is not None:
                try:
                    job = await self.writer.execute(lambda c: outbox.claim(
                        c, self.clock(), self.settings.lease_seconds, self.settings.default_region))
                except Exception:  # noqa: BLE001 - store trouble: try again shortly
                    log.exception("sync: could not claim a job")
            if job is None:
                slots.release()
                # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # arrives while the wake event is being set, and the loop would outlive stop().
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waiter}, timeout=await self._idle_delay())
                finally:
                    waiter.cancel()
                continue
            task = asyncio.create_task(self._run(job))
            self._jobs.add(task)
            task.add_done_callback(lambda t: (self._jobs.discard(t), slots.release(), self._wake.set()))

    async def _idle_delay(self) -> float:
        if self.pause_reason and self.paused_until:
            return max(0.05, min(5.0, self.paused_until - self.clock()))
        if self.pause_reason:
            return 2.0
        # Jobs leased by this process wake the dispatcher when they finish; leases of a
        # process that died expire and are taken again.  Jobs waiting behind an earlier job
        # of their contact are not due before it.
        due = await self.reader.run(outbox.next_due, self.clock())
        if due is None:
            return 5.0
        return max(0.01, min(5.0, due - self.clock()))

    # -- one job -------------------------------------------------------------
    def _on_attempt(self, attempt: Attempt) -> None:
        for observer in self.attempt_observers:
            observer(attempt.status)
        self._attempts.setdefault(_current_job.get(), []).append(
            (
                _current_job.get(),
                self.clock(),
                attempt.kind,
                attempt.method,
                attempt.path,
                attempt.status,
                attempt.response_body,
                attempt.trace_id,
                attempt.duration_ms,
                attempt.error,
            )
        )

    async def _write(self, job_id: int, fn: Callable[[sqlite3.Connection], Any] | None = None) -> Any:
        """Run ``fn`` on the writer and flush this job's delivery log in the same transaction."""
        rows = self._attempts.pop(job_id, [])

        def apply(conn: sqlite3.Connection) -> Any:
            if rows:
                outbox.record_attempts(conn, rows)
                limited = sum(1 for r in rows if r[5] == 429)
                if limited:
                    outbox.bump(conn, "http_429", rows[0][1], limited)
            return fn(conn) if fn else None

        return await self.writer.execute(apply)

    async def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        _current_job.set(job_id)
        now = self.clock
        try:
            await self._sync(job)
        except RateLimited as exc:
            delay, error = exc.retry_after_seconds or 10.0, str(exc)
            self.paused_until = now() + delay
            self.pause_reason = "GHL daily limit reached" if exc.daily_exhausted else "GHL rate limit"
            await self._write(job_id, lambda c: outbox.retry_later(c, job_id, now() + delay, error, now(), failure=False))
        except AuthError as exc:
            self.auth_error = state = f"Token rejected (HTTP {exc.status}): fix your token"
            error = f"{exc} - fix your token"
            log.error("sync: %s", exc)
            await self._write(job_id, lambda c: (outbox.kill(c, job_id, error, now()),
                                                  outbox.set_state(c, "auth_error", state)))
        except (PermanentError, PlanError) as exc:
            log.warning("sync: job %s dead: %s", job_id, exc)
            error = str(exc)
            await self._write(job_id, lambda c: (outbox.kill(c, job_id, error, now()),
                                                  outbox.distrust_contact(c, job["phone"])))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - transient CRM trouble, or a bug: retry, then dead-letter
            failures = int(job["failures"]) + 1
            delay = backoff(failures, self.settings.retry_schedule, self.rng)
            message = str(exc) or type(exc).__name__
            if not isinstance(exc, CrmError):
                log.exception("sync: job %s failed", job_id)
            if delay is not None and isinstance(exc, UnknownOutcome) and exc.status is None:
                # A write that got no answer may still be applied by the CRM: give it as long as
                # the client waited before reading the contact again (later jobs of the contact
                # wait too), so the retry sees it and a late write cannot undo a newer one.
                delay = max(delay, self.settings.timeout_seconds)
            # Whatever the write did, the contact's tags and fields are re-read before the next diff.
            if delay is None:
                await self._write(job_id, lambda c: (
                    outbox.kill(c, job_id, f"retries exhausted: {message}", now()),
                    outbox.distrust_contact(c, job["phone"])))
            else:
                await self._write(job_id, lambda c: (
                    outbox.retry_later(c, job_id, now() + delay, message, now(), failure=True),
                    outbox.distrust_contact(c, job["phone"])))
        else:
            await self._write(job_id, lambda c: outbox.complete(c, job_id, now()))
            for observer in self.completion_observers:
                observer(now() - float(job["created_at"]))

    async def _sync(self, job: dict[str, Any]) -> None:
        client = self._client
        assert client is not None
        job_id, source, call_id = job["id"], job["source"], job["call_id"]
        if job["call"] is None:
            raise PlanError(f"call {source}/{call_id} is not in the store")
        plan = plan_for(CallRecord.from_dict(job["call"]), self.settings)
        # Jobs of one contact run one after the other, in claim order: each reads the contact
        # state (tags, fields, counter) the previous one left.  The call came with the claim, so
        # nothing is awaited between the claim and taking the contact's lock (a read completing
        # out of order would let a later job of the contact overtake an earlier one).
        async with self._phone(plan.phone):
            await self._sync_contact(client, job, plan)

    @contextlib.asynccontextmanager
    async def _phone(self, phone: str) -> AsyncIterator[None]:
        lock, users = self._phone_locks.get(phone, (asyncio.Lock(), 0))
        self._phone_locks[phone] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._phone_locks[phone]
            if users == 1:
                del self._phone_locks[phone]
            else:
                self._phone_locks[phone] = (lock, users - 1)

    # -- operations for CLI / admin / window --------------------------------
    async def replay(self, **selection: Any) -> int:
        count = await self.writer.execute(lambda c: outbox.replay(c, self.clock(), **selection))
        self.notify()
        return count

    async def discard(self, job_ids: list[int]) -> int:
        return await self.writer.execute(lambda c: outbox.discard(c, job_ids, self.clock()))

    async def check(self) -> dict[str, Any]:
        """``GET /locations/{id}`` with the configured token: a verdict for people."""
        return await check_crm(self.settings, self.token_for(), self._session)


async def check_crm(settings: GhlSettings, token: str | None, session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
    if not settings.configured:
        return {"ok": False, "verdict": "No location id: set [crm.ghl] location_id in config.toml."}
    if not token:
        return {
            "ok": False,
            "verdict": "No token: run `callsync secret set crm:ghl` or set CALLSYNC_GHL_TOKEN.",
        }
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        client = GhlClient(session, base_url=settings.base_url, token=token, location_id=settings.location_id,
                           timeout=min(settings.timeout_seconds, 15.0))
        location = await client.get_location()
    except AuthError as exc:
        return {"ok": False, "status": exc.status,
                "verdict": f"Token rejected (HTTP {exc.status}): create a new token with the "
                           "contacts and locations scopes, or check the location id."}
    except CrmError as exc:
        # No status: nothing came back (refused, unknown host, timeout); else GoHighLevel said no.
        if exc.status is None:
            return {"ok": False, "status": None, "verdict": f"Could not connect to {settings.base_url}: {exc.message}"}
        return {"ok": False, "status": exc.status, "verdict": f"GoHighLevel answered {exc.status}: {exc.message}"}
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return {"ok": False, "status": None,
                "verdict": f"Could not connect to {settings.base_url}: {exc or type(exc).__name__}"}
    finally:
        if own:
            await session.close()
    name = location.get("name") or location.get("id")
    return {"ok": True, "verdict": f"Connected to location {name!r} ({settings.location_id}).", "location": location}
