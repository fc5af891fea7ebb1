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
import json
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from connector.sync.rules import Plan, PlanError, callback_effects, plan_for
from connector.sync.settings import GhlSettings

log = logging.getLogger(__name__)

JITTER = 0.2
TOKEN_USER = "crm:ghl"

_current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar("callsync_job", default=None)


def backoff(failures: int, schedule: list[float], rng: random.Random) -> float | None:
    """Delay before the next try after ``failures`` failed tries; None when retries are exhausted."""
    if failures > len(schedule):
        return None
    return schedule[failures - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


def _cached_contact(conn: sqlite3.Connection, phone: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT contact_id, tags_json, fields_json, checked_at FROM contacts WHERE phone = ?", (phone,)
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "tags": json.loads(row[1] or "[]"), "fields": json.loads(row[2] or "{}"), "checked_at": row[3]}


def _counter(conn: sqlite3.Connection, phone: str) -> int | None:
    row = conn.execute("SELECT count FROM callback_counters WHERE phone = ?", (phone,)).fetchone()
    return int(row[0]) if row else None


class SyncWorker:
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

    async def _sync_contact(self, client: GhlClient, job: dict[str, Any], plan: Plan) -> None:
        job_id = job["id"]
        done = await self.reader.run(outbox.steps, job_id)
        contact = await self._contact(client, job_id, plan, done)
        if contact is None:
            return
        cid = contact["id"]
        turn = await self._turn(job, plan)
        if plan.note:
            await self._once(
                job_id, "note", done,
                post=lambda: client.add_note(cid, plan.note or ""),
                already=lambda: self._has_marker(client.list_notes(cid), plan.marker),
            )
        if turn is not None:  # a stale call only adds its note and task
            count, cb_add, cb_remove = turn
            await self._tags(client, job_id, plan, contact, cb_add, cb_remove)
            await self._fields(client, job_id, plan, contact, count)
        if plan.task:
            title, body, due = plan.task
            await self._once(
                job_id, "task", done,
                post=lambda: client.create_task(cid, title, body, due),
                already=lambda: self._has_marker(client.list_tasks(cid), plan.marker),
            )

    @staticmethod
    async def _has_marker(items: Awaitable[list[dict[str, Any]]], marker: str) -> bool:
        return any(marker in (item.get("body") or "") for item in await items)

    async def _once(
        self,
        job_id: int,
        step: str,
        done: dict[str, tuple[str, Any]],
        *,
        post: Callable[[], Awaitable[Any]],
        already: Callable[[], Awaitable[bool]],
    ) -> None:
        """A write that must happen exactly once: recorded as started before it is sent."""
        state = done.get(step, (None, None))[0]
        if state == "done":
            return
        if state == "started" and await already():
            await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "done", {"found": True}, self.clock()))
            return
        await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "started", None, self.clock()))
        result = await post()
        ref = result.get("id") if isinstance(result, dict) else None
        await self._write(job_id, lambda c: outbox.set_step(c, job_id, step, "done", {"id": ref}, self.clock()))

    async def _contact(
        self, client: GhlClient, job_id: int, plan: Plan, done: dict[str, tuple[str, Any]]
    ) -> dict[str, Any] | None:
        """The contact for the plan's phone: from the cache, refreshed when stale, else looked up."""
        step = done.get("contact")
        if step and step[1] and step[1].get("skipped"):
            return None
        cached = await self.reader.run(_cached_contact, plan.phone)
        found: dict[str, Any] | None = None
        if cached:
            if self.clock() - (cached["checked_at"] or 0) < self.settings.contact_cache_seconds:
                if not step:
                    await self._write(
                        job_id, lambda c: outbox.set_step(c, job_id, "contact", "done", {"id": cached["id"]}, self.clock())
                    )
                return cached
            try:  # stale tags/fields: re-read the known contact, no search needed
                found = await client.get_contact(cached["id"])
            except PermanentError:
                found = None  # deleted in the CRM meanwhile: look it up again
        if found is None:
            found = await client.find_contact_by_phone(plan.phone)
        if found is None:
            if self.settings.missing_contact == "skip":
                await self._write(
                    job_id, lambda c: outbox.set_step(c, job_id, "contact", "done", {"skipped": True}, self.clock())
                )
                return None
            found = await client.upsert_contact(plan.phone)
        contact = found.get("contact", found)
        now = self.clock()

        def save(conn: sqlite3.Connection) -> None:
            outbox.cache_contact(conn, plan.phone, contact, now)
            outbox.set_step(conn, job_id, "contact", "done", {"id": contact["id"]}, now)

        await self._write(job_id, save)
        return await self.reader.run(_cached_contact, plan.phone)

    async def _turn(self, job: dict[str, Any], plan: Plan) -> tuple[int | None, list[str], list[str]] | None:
        """The contact's turn for this call, in one transaction: None when a call that ended later was
        applied already (stale); else the callback counter to write (counted once) and its tags."""
        job_id, now = job["id"], self.clock()
        end = job["call_end"] if job.get("call_end") is not None else job["created_at"]

        def apply(conn: sqlite3.Connection) -> tuple[int | None, list[str], list[str]] | None:
            newer = outbox.take_turn(conn, plan.phone, end, job_id, now)
            if newer is not None:
                outbox.set_step(conn, job_id, "stale", "done", {"newer_job": newer}, now)
                return None
            recorded = outbox.steps(conn, job_id).get("callback")
            add: list[str] = []
            remove: list[str] = []
            if recorded is not None:
                result = recorded[1] or {}
                add, remove = result.get("add", []), result.get("remove", [])
            elif plan.callback != "none":
                count, add, remove = callback_effects(plan.callback, _counter(conn, plan.phone) or 0, self.settings)
                outbox.count_callback(conn, job_id, plan.phone, count, {"add": add, "remove": remove}, now)
            # The store's counter is the truth: written whenever the contact has one.
            return _counter(conn, plan.phone), add, remove

        return await self._write(job_id, apply)

    async def _tags(
        self,
        client: GhlClient,
        job_id: int,
        plan: Plan,
        contact: dict[str, Any],
        cb_add: list[str],
        cb_remove: list[str],
    ) -> None:
        # Recomputed on every try, never skipped as done: after a failure the contact was re-read,
        # so a write that landed unseen (or anything else that changed it) is corrected here.
        have = {t.casefold() for t in contact["tags"]}
        wanted = list(dict.fromkeys(plan.add_tags + cb_add))
        unwanted = [t for t in dict.fromkeys(plan.remove_tags + cb_remove) if t not in wanted]
        add = [t for t in wanted if t.casefold() not in have]
        remove = [t for t in unwanted if t.casefold() in have]
        tags = list(contact["tags"])
        if add:
            await client.add_tags(contact["id"], add)
            tags += add
        if remove:
            await client.remove_tags(contact["id"], remove)
            gone = {t.casefold() for t in remove}
            tags = [t for t in tags if t.casefold() not in gone]

        def save(conn: sqlite3.Connection) -> None:
            outbox.update_contact_cache(conn, plan.phone, tags=tags)
            outbox.set_step(conn, job_id, "tags", "done", {"added": add, "removed": remove}, self.clock())

        await self._write(job_id, save)

    async def _fields(
        self,
        client: GhlClient,
        job_id: int,
        plan: Plan,
        contact: dict[str, Any],
        count: int | None,
    ) -> None:
        values = dict(plan.fields)
        if count is not None and self.settings.callback_count_field:
            values[self.settings.callback_count_field] = count
        if not values:
            return
        field_ids = await self._custom_field_ids(client)
        current = contact["fields"]
        changes, missing = [], []
        for key, value in values.items():
            field_id = field_ids.get(key)
            if field_id is None:
                missing.append(key)
            elif str(current.get(field_id)) != str(value):
                changes.append((field_id, value))
        if changes:
            await client.update_custom_fields(contact["id"], changes)
        fields = current | {fid: value for fid, value in changes}

        def save(conn: sqlite3.Connection) -> None:
            outbox.update_contact_cache(conn, plan.phone, fields=fields)
            outbox.set_step(conn, job_id, "fields", "done", {"written": len(changes), "unknown_keys": missing}, self.clock())

        if missing:
            log.warning("sync: custom fields %s do not exist in GHL location %s", missing, self.settings.location_id)
        await self._write(job_id, save)

    async def _custom_field_ids(self, client: GhlClient) -> dict[str, str]:
        """Field key -> id, listed once (concurrent jobs wait for the one request in flight)."""
        async with self._field_ids_lock:
            if self._field_ids is None:
                definitions = [d for d in await client.list_custom_fields() if d.get("id")]
                ids = {d.get("fieldKey", ""): d["id"] for d in definitions}
                self._field_ids = ids | {key.removeprefix("contact."): i for key, i in ids.items()}
            return self._field_ids

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
