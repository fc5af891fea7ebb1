"""Reconciliation and the heartbeat, running inside callsync (``Service.background``).

:class:`Heartbeat` writes a beat every few seconds; a beat that comes a minute late (the machine slept)
starts a new stretch, so every pause shows as a gap.  :class:`Reconciler` runs, for each Twilio source
with ``reconcile = true``, at start-up and every ``reconcile_minutes``: list the calls that started since
the last reconciled point (with an overlap), store what the webhooks missed (:mod:`.plan`) through the
same writer as the webhooks (origin ``reconcile``), fetch calls left incomplete and complete them, and
record where the next run starts.  A failure is one sentence in the source's state; the next run tries
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from connector import secrets
from connector.formats.fields import parse_time
from connector.ingest import Incoming
from connector.reconcile import gaps as gap_rules
from connector.reconcile.plan import Plan, Step, call_event, is_incomplete, next_since, plan
from connector.reconcile.settings import token_user
from connector.reconcile.twilio_api import TwilioClient, TwilioError
from connector.store import gaps as store

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
OVERLAP_SECONDS = 600.0  # the next listing starts this much before the last run
SETTLE_SECONDS = 120.0  # a call that ended this recently is left to its webhook
INCOMPLETE_FETCHES = 50  # calls fetched one by one per run, at most


class Heartbeat:
    def __init__(self, writer: Any, *, clock: Callable[[], float] = time.time, interval: float = BEAT_SECONDS,
                 gap: float = gap_rules.GAP_SECONDS) -> None:
        self.writer, self.clock, self.interval, self.gap = writer, clock, interval, gap
        self.started_at: float | None = None
        self.last: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._begin(self.clock())
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def _begin(self, now: float) -> None:
        self.started_at = self.last = now
        await self.writer.execute(lambda db: store.begin_stretch(db, now))

    async def beat(self) -> None:
        now = self.clock()
        try:
            if self.last is None or now - self.last >= self.gap:  # slept or stalled: that pause is a gap
                await self._begin(now)
            else:
                started = self.started_at
                await self.writer.execute(lambda db: store.beat(db, started, now))
                self.last = now
        except Exception as exc:  # noqa: BLE001 - storage down: that time is not receiving either
            log.debug("heartbeat not written: %s", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.beat()


class Reconciler:
    def __init__(self, config: Any, writer: Any, reader: Any, *, clock: Callable[[], float] = time.time,
                 client_options: dict[str, Any] | None = None, settle: float = SETTLE_SECONDS,
                 overlap: float = OVERLAP_SECONDS) -> None:
        self.config, self.writer, self.reader, self.clock = config, writer, reader, clock
        self.client_options = client_options or {}
        self.settle, self.overlap = settle, overlap
        self.runs: dict[str, int] = {}  # finished runs per source (tests and the window wait on it)
        self.last: dict[str, dict[str, Any]] = {}  # each source's last run, for the window
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._started = False

    def sources(self) -> list[str]:
        return sorted(n for n, s in self.config.sources.items() if s.kind == "twilio" and s.reconcile)

    async def start(self) -> None:
        self._started = True
        self.refresh()

    def refresh(self) -> None:
        """Follow the configuration: a source that now reconciles starts (and runs at once), one that no
        longer does stops."""
        if not self._started:
            return
        wanted = set(self.sources())
        for name in [n for n in self._tasks if n not in wanted]:
            self._tasks.pop(name).cancel()
        for name in sorted(wanted - set(self._tasks)):
            self._wake[name] = asyncio.Event()
            self._tasks[name] = asyncio.create_task(self._loop(name), name=f"reconcile:{name}")

    async def stop(self) -> None:
        self._started = False
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def run_soon(self, name: str) -> None:
        """Run this source's reconciliation now instead of at its next period."""
        if name in self._wake:
            self._wake[name].set()

    async def _loop(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            wake.clear()  # a request made while this run goes is not lost: it runs again right after
            try:
                await self.run(name)
            except Exception:  # noqa: BLE001 - never ends the loop: the next period tries again
                log.exception("reconciling %s failed", name)
            source = self.config.sources.get(name)
            if source is None or not source.reconcile:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), source.reconcile_minutes * 60)

    def _client(self, source: Any) -> TwilioClient | None:
        token = secrets.get_secret(token_user(source.name)) or secrets.get_secret(secrets.source_user(source.name))
        if not token:
            return None
        return TwilioClient(source.account_sid, source.api_key_sid or source.account_sid, token,
                            api_url=source.api_url, **self.client_options)

    async def run(self, name: str) -> dict[str, int]:
        """One reconciliation of ``name``: ``{"filled", "completed", "skipped", "waiting"}``."""
        source = self.config.sources[name]
        now = self.clock()
        client = self._client(source)
        counts = {"filled": 0, "completed": 0, "skipped": 0, "waiting": 0}
        if client is None:
            message = (f"no Twilio token for {name}: set the source's secret (the account's auth token), or "
                       f"keyring user {token_user(name)} / {secrets.env_name(token_user(name))}")
            await self._save(name, None, now, message)
            return counts
        state = await self.reader.run(store.reconcile_state, name)
        since = (state or {}).get("since") or now - source.reconcile_lookback_hours * 3600
        try:
            async with client:
                listed = [call async for call in client.list_calls(datetime.fromtimestamp(since, timezone.utc))]
                sids = [str(c.get("sid")) for c in listed if c.get("sid")]
                stored = await self.reader.run(store.call_statuses, name, sids)
                result = plan(listed, stored, now=now, settle=self.settle)
                await self._apply(name, result.steps, counts)
                counts["skipped"], counts["waiting"] = result.skipped, len(result.waiting)
                await self._complete_incomplete(name, source, client, counts)
        except TwilioError as exc:
            log.warning("reconciling %s: %s", name, exc)
            await self._save(name, None, now, str(exc))
            return counts
        await self._save(name, next_since(now, result, self.overlap), now, None)
        if counts["filled"] or counts["completed"]:
            log.info("reconciled %s: %d calls filled in, %d completed from Twilio", name, counts["filled"],
                     counts["completed"])
        return counts

    async def _save(self, name: str, since: float | None, at: float, error: str | None) -> None:
        await self.writer.execute(lambda db: store.save_run(db, name, since=since, at=at, error=error))
        previous = self.last.get(name, {})
        self.last[name] = {"last_run": at, "last_ok": previous.get("last_ok") if error else at, "last_error": error}
        self.runs[name] = self.runs.get(name, 0) + 1

    async def _apply(self, name: str, steps: list[Step], counts: dict[str, int]) -> None:
        for step in steps:
            event, body = call_event(step.call)
            at = self.clock()
            stored = await self.writer.store(Incoming(name, event, body, "application/json",
                                                      {"X-Callsync-Origin": "reconcile"}, at, origin="reconcile"))
            if stored.duplicate:
                continue  # an earlier run stored it
            await self.writer.execute(
                lambda db, s=step, t=at: store.record_reconciled(db, name, s.sid, s.kind, s.call_start, t))
            counts["filled" if step.kind == "fill" else "completed"] += 1

    async def _complete_incomplete(self, name: str, source: Any, client: TwilioClient, counts: dict[str, int]) -> None:
        """Calls without a final event ``incomplete_minutes`` after their last one: ask Twilio about each."""
        now = self.clock()
        fetched = 0
        for row in await self.reader.run(store.open_calls, name):
            last = parse_time(row.get("last_event_at"))
            last_at = last.timestamp() if last else row.get("updated_at")
            if not is_incomplete(row.get("status"), last_at, now, source.incomplete_minutes):
                continue
            if fetched >= INCOMPLETE_FETCHES:
                break
            fetched += 1
            call = await client.get_call(row["call_id"])
            if call is not None:
                result: Plan = plan([call], {row["call_id"]: row.get("status")}, now=now, settle=self.settle)
                await self._apply(name, result.steps, counts)

    # -- what the admin API and the window read ---------------------------------------------
    async def metrics(self) -> dict[str, Any]:
        """``gaps`` (last 7 days, with the calls reconciled in each) and each source's last run."""
        now = self.clock()
        since = now - gap_rules.WINDOW_DAYS * 86400
        stretches = await self.reader.run(store.stretches, since)
        found = gap_rules.find_gaps(stretches, since=since)
        reconciled = await self.reader.run(store.reconciled_between, found[0][0], now) if found else []
        states = {s["source"]: s for s in await self.reader.run(store.all_reconcile_states)}
        return {"gaps": gap_rules.with_counts(found, reconciled),
                "reconcile": {name: {k: states.get(name, {}).get(k) for k in ("since", "last_run", "last_ok",
                                                                              "last_error")}
                              for name in self.sources()}}
