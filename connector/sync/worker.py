"""The sync worker: claims outbox jobs and has a CRM adapter carry each one out.

Never in the request path: it reads committed calls and writes its progress through the store
writer.  The dispatch loop here knows nothing of a particular CRM: it claims a job (a contact's jobs
in the order their calls ended), runs up to ``concurrency`` at once through the adapter
(:class:`connector.sync.crm.base.CrmAdapter`; GoHighLevel's is :class:`connector.sync.ghl_sync.GhlSync`)
and turns what the adapter raised into the job's fate: done, retried later (with backoff), dead, or a
pause of every request (rate limit, rejected token).  Each step of a job is recorded by the adapter,
so a retry, a replay or a restart after a crash neither posts a second note nor counts a callback
twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from connector import secrets
from connector.store import contacts, jobs, stats
from connector.store.db import Db
from connector.store.reader import StoreReader
from connector.store.writer import StoreWriter
from connector.sync import outbox
from connector.sync.crm.base import Attempt, CrmAdapter
from connector.sync.crm.errors import AuthError, CrmError, PermanentError, RateLimited, UnknownOutcome
from connector.sync.ghl_sync import TOKEN_USER, GhlSync, check_crm
from connector.sync.rules import PlanError
from connector.sync.settings import GhlSettings

__all__ = ["JITTER", "TOKEN_USER", "SyncWorker", "backoff", "check_crm"]

log = logging.getLogger(__name__)
T = TypeVar("T")

JITTER = 0.2

_current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar("callsync_job", default=None)


def backoff(failures: int, schedule: list[float], rng: random.Random) -> float | None:
    """Delay before the next try after ``failures`` failed tries; None when retries are exhausted."""
    if failures > len(schedule):
        return None
    return schedule[failures - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


class SyncWorker:
    def __init__(
        self,
        writer: StoreWriter,
        reader: StoreReader,
        settings: GhlSettings,
        *,
        crm: CrmAdapter | None = None,
        token_for: Callable[[], str | None] = lambda: secrets.cached_secret(TOKEN_USER),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.settings = settings
        self.crm = crm or GhlSync(settings, token_for=token_for)
        self.crm.on_attempt = self._on_attempt
        self.clock = clock
        self.rng = rng or random.Random()
        self.pause_reason: str | None = None
        self.paused_until: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Metrics: the HTTP status of every CRM request (None: no answer), and receipt -> CRM seconds
        # of every completed job.
        self.attempt_observers: list[Callable[[int | None], None]] = []
        self.completion_observers: list[Callable[[float], None]] = []
        self._attempts: dict[int | None, list[tuple[Any, ...]]] = {}

    # -- lifecycle -----------------------------------------------------------
    def apply_settings(self, settings: GhlSettings) -> None:
        """Use new ``[crm.ghl]`` settings from now on (the window edits them while running)."""
        self.settings = settings
        self.crm.apply_settings(settings)
        self.notify()

    def notify(self) -> None:
        """Thread-safe: new work may be due (the store writer calls it after queueing jobs)."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self.crm.start()
        self._task = asyncio.create_task(self._dispatch(), name="sync-dispatch")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._task, *self._jobs) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.crm.stop()
        self._task = None

    def state(self) -> dict[str, Any]:
        return self.crm.state() | {"pause_reason": self.pause_reason, "paused_until": self.paused_until,
                                   "in_flight": len(self._jobs)}

    # -- dispatch ------------------------------------------------------------
    def _ready(self) -> bool:
        """Whether a job may be claimed now: the CRM is usable and no pause is running."""
        blocked = self.crm.blocked()
        if blocked:
            self.pause_reason = blocked
            return False
        if self.paused_until and self.clock() < self.paused_until:
            return False
        self.paused_until = self.pause_reason = None
        return True

    async def _dispatch(self) -> None:
        assert self._wake is not None
        slots = asyncio.Semaphore(self.settings.concurrency)
        while not self._stopping:
            await slots.acquire()
            self._wake.clear()
            job = None
            if self._ready():
                settings = self.settings
                try:
                    job = await self.writer.execute(lambda db: outbox.claim(
                        db, self.clock(), settings.lease_seconds, settings.default_region))
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
        # Jobs leased by this process wake the dispatcher when they finish; leases of a process that
        # died expire and are taken again.  Jobs waiting behind an earlier job of their contact are not
        # due before it.
        due = await self.reader.run(jobs.next_due, self.clock())
        if due is None:
            return 5.0
        return max(0.01, min(5.0, due - self.clock()))

    # -- what the adapter writes and reads (connector.sync.crm.base.SyncStore) ------------
    def _on_attempt(self, attempt: Attempt) -> None:
        for observer in self.attempt_observers:
            observer(attempt.status)
        job_id = _current_job.get()
        self._attempts.setdefault(job_id, []).append((
            job_id, self.clock(), attempt.kind, attempt.method, attempt.path, attempt.status,
            attempt.response_body, attempt.trace_id, attempt.duration_ms, attempt.error))

    async def write(self, job_id: int, fn: Callable[[Db], T] | None = None) -> T:
        """Run ``fn`` on the writer and flush this job's delivery log in the same transaction."""
        rows = self._attempts.pop(job_id, [])

        def apply(db: Db) -> Any:
            if rows:
                jobs.record_attempts(db, rows)
                limited = sum(1 for r in rows if r[5] == 429)
                if limited:
                    stats.bump(db, "http_429", rows[0][1], limited)
            return fn(db) if fn else None

        return await self.writer.execute(apply)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.reader.run(fn, *args)

    # -- one job -------------------------------------------------------------
    async def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        _current_job.set(job_id)
        now = self.clock
        try:
            await self.crm.sync(job, self)
        except RateLimited as exc:
            delay, error = exc.retry_after_seconds or 10.0, str(exc)
            self.paused_until = now() + delay
            self.pause_reason = f"{self.crm.name} daily limit reached" if exc.daily_exhausted else \
                f"{self.crm.name} rate limit"
            await self.write(job_id, lambda db: jobs.retry_later(db, job_id, now() + delay, error, now(), failure=False))
        except AuthError as exc:
            state = self.crm.rejected(exc)
            error = f"{exc} - fix your token"
            log.error("sync: %s", exc)
            await self.write(job_id, lambda db: (jobs.kill(db, job_id, error, now()),
                                                 contacts.set_state(db, "auth_error", state)))
        except (PermanentError, PlanError) as exc:
            log.warning("sync: job %s dead: %s", job_id, exc)
            error = str(exc)
            await self.write(job_id, lambda db: (jobs.kill(db, job_id, error, now()),
                                                 contacts.distrust(db, job["phone"])))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - transient CRM trouble, or a bug: retry, then dead-letter
            await self._failed(job, exc)
        else:
            await self.write(job_id, lambda db: jobs.complete(db, job_id, now()))
            for observer in self.completion_observers:
                observer(now() - float(job["created_at"]))

    async def _failed(self, job: dict[str, Any], exc: Exception) -> None:
        job_id, now = job["id"], self.clock
        failures = int(job["failures"]) + 1
        delay = backoff(failures, self.settings.retry_schedule, self.rng)
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, CrmError):
            log.exception("sync: job %s failed", job_id)
        if delay is not None and isinstance(exc, UnknownOutcome) and exc.status is None:
            # A write that got no answer may still be applied by the CRM: give it as long as the client
            # waited before reading the contact again (later jobs of the contact wait too), so the
            # retry sees it and a late write cannot undo a newer one.
            delay = max(delay, self.settings.timeout_seconds)
        # Whatever the write did, the contact's tags and fields are re-read before the next diff.
        if delay is None:
            await self.write(job_id, lambda db: (jobs.kill(db, job_id, f"retries exhausted: {message}", now()),
                                                 contacts.distrust(db, job["phone"])))
        else:
            await self.write(job_id, lambda db: (
                jobs.retry_later(db, job_id, now() + delay, message, now(), failure=True),
                contacts.distrust(db, job["phone"])))

    # -- operations for CLI / admin / window --------------------------------
    async def replay(self, **selection: Any) -> int:
        count = await self.writer.execute(lambda db: jobs.replay(db, self.clock(), **selection))
        self.notify()
        return count

    async def discard(self, job_ids: list[int]) -> int:
        return await self.writer.execute(lambda db: jobs.discard(db, job_ids, self.clock()))

    async def check(self) -> dict[str, Any]:
        """Test the CRM connection with the configured credentials: a verdict for people."""
        return await self.crm.check()
