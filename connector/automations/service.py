"""The automations at work: the engine fed with every newly stored event, alerts stored with their
evidence and handed to the outbox, desktop observers told.

* Start-up: thresholds' state and the store's salt are loaded, each enabled recipe's windows refilled
  with one query bounded by its window size, and each subject judged once (a crossing missed while
  callsync was down is raised then, under the id it would have had).  Events stored after the last one
  the previous run evaluated, and before this start, are evaluated for the per-call recipes.
* Live: the store writer hands over what each commit stored (writer thread); the engine runs on the
  event loop, O(1) per event and recipe.  Only a crossing (or re-arm) writes anything: the alerts, one
  outbox job per sink of each new alert, the thresholds' state and the last evaluated event id, in one
  transaction.  The id of the last evaluated event is also saved every ``MARK_SECONDS`` while events come.
* Every ``TICK_SECONDS``: time-driven checks (a pause running over its limit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from connector.automations import delivery
from connector.automations.dispatcher import Dispatcher
from connector.automations.engine import Engine
from connector.automations.facts import Fact, event_time, from_call_row, from_stored, machine
from connector.automations.settings import AutomationSettings
from connector.automations.windows import Alert
from connector.model import INITIATED
from connector.store import alerts as store

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0
MARK_SECONDS = 5.0
CATCH_UP_SECONDS = 300.0  # events older than this are not evaluated again at start-up (too late to act)
CATCH_UP_MAX = 5000
AGENT_HISTORY_SECONDS = 36 * 3600


class Automations:
    def __init__(self, settings: AutomationSettings, writer: Any, reader: Any, *,
                 clock: Callable[[], float] = time.time, callback_threshold: Callable[[], int] = lambda: 3,
                 alone: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.writer = writer
        self.reader = reader
        self.clock = clock
        self.callback_threshold = callback_threshold
        self.alone = alone  # the only process writing the store (not one of serve --workers)
        self.engine = Engine(settings)
        self.dispatcher = Dispatcher(writer, lambda: self.settings, clock=clock)
        self.observers: list[Callable[[list[dict[str, Any]]], None]] = []  # new alerts, on the event loop
        self.ready = False
        self.cut = 0  # the newest event the rebuild saw; live events after it are fed once ready
        self.evaluated_through = 0
        self.saved_mark = 0
        self.alerts_raised = 0
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[Fact] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._saves: set[asyncio.Future[Any]] = set()
        self._handoff = threading.Lock()
        self._unstarted: list[list[Any]] = []

    # -- writer thread ---------------------------------------------------------------------
    def on_stored(self, stored: list[Any]) -> None:
        """Writer thread, after a commit: what it stored goes to the event loop (one call per commit)."""
        with self._handoff:
            loop = self._loop
            if loop is None:  # not started yet: kept for start()
                self._unstarted.append(stored)
                return
        try:
            loop.call_soon_threadsafe(self._take, stored)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    # -- event loop -----------------------------------------------------------------------
    def _take(self, stored: list[Any]) -> None:
        facts = [fact for fact in map(from_stored, stored) if fact is not None]
        if not facts:
            return
        if not self.ready:
            self._early += facts
            return
        self._feed(facts)

    def _feed(self, facts: list[Fact]) -> None:
        try:
            alerts = self.engine.feed(facts)
        except Exception as exc:  # noqa: BLE001 - never let a recipe's bug stop the others for good
            log.exception("automations: evaluating %d events failed", len(facts))
            self.last_error = f"{type(exc).__name__}: {exc}"
            alerts = []
        self.evaluated_through = max(self.evaluated_through, max(f.event_id for f in facts))
        self._save(alerts)

    def _sinks(self, alert: Alert) -> list[tuple[str, str]]:
        pairs = [("action", alert.action)] if alert.action else []
        if alert.notify:
            pairs += [("notify", delivery.url_key(url)) for url in self.settings.alerts.notify]
            if self.settings.alerts.webhook_url:
                pairs.append(("webhook", ""))
        return pairs

    def _save(self, alerts: list[Alert], *, force_mark: bool = False) -> None:
        trips = self.engine.drain_trips()
        if not alerts and not trips and not force_mark:
            return
        now = self.clock()
        rows = [asdict(a) for a in alerts]
        for i, row in enumerate(rows):  # raised now (in order): the event's own time is in the evidence
            row["evidence"]["event_at"] = row["created_at"]
            row["created_at"] = now + i * 1e-6
        sinks = [self._sinks(a) for a in alerts]
        mark = self.evaluated_through  # 0 too: "nothing stored yet" is a mark, not "never evaluated"
        self.saved_mark = max(self.saved_mark, self.evaluated_through)
        future = self.writer.execute(lambda db: store.save(db, rows, sinks, trips, mark, now))
        self._saves.add(future)
        future.add_done_callback(lambda f: self._saved(f, rows))

    def _saved(self, future: asyncio.Future[Any], rows: list[dict[str, Any]]) -> None:
        self._saves.discard(future)
        if future.cancelled():
            return
        if future.exception() is not None:
            self.last_error = f"could not store alerts: {future.exception()}"
            log.error("automations: %s", self.last_error)
            return
        new = set(future.result())
        fresh = [row for row in rows if row["id"] in new]
        if not fresh:
            return
        self.alerts_raised += len(fresh)
        for row in fresh:  # alerts meant for people are warnings; the rest (voicemail drops) are routine
            log.log(logging.WARNING if row["notify"] else logging.INFO, "alert %s [%s]: %s", row["id"], row["recipe"],
                    row["message"])
        self.dispatcher.notify()
        shown = [row for row in fresh if row["notify"]]
        for observer in list(self.observers) if shown else []:
            try:
                observer(shown)
            except Exception:  # noqa: BLE001
                log.exception("automations: an alert observer failed")

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if not self.alone():
            # serve --workers: each process stores only its share of the events, so its windows would be wrong.
            self.last_error = "automations are not evaluated by serve --workers; run one process to use them"
            log.warning("automations: %s", self.last_error)
            self.observers.clear()
            with self._handoff:
                if self.on_stored in getattr(self.writer, "on_stored", []):
                    self.writer.on_stored.remove(self.on_stored)
                self._unstarted.clear()
            return
        with self._handoff:
            self._loop = asyncio.get_running_loop()
            unstarted, self._unstarted = self._unstarted, []
        for stored in unstarted:
            self._take(stored)
        try:
            await self._rebuild()
        except Exception as exc:  # noqa: BLE001 - the receiver and the CRM keep going without automations
            log.exception("automations: could not rebuild the windows from the store")
            self.last_error = f"rebuild failed: {exc}"
        self.ready = True
        early, self._early = [f for f in self._early if f.event_id > self.cut], []
        if early:
            self._feed(early)
        await self.dispatcher.start()
        self._tasks.append(asyncio.create_task(self._ticker(), name="automations-tick"))

    async def stop(self) -> None:
        if self._loop is None:  # never started (serve --workers)
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.evaluated_through > self.saved_mark:
            self._save([], force_mark=True)
        if self._saves:
            await asyncio.wait(list(self._saves), timeout=5)
        await self.dispatcher.stop()

    async def _ticker(self) -> None:
        last_mark = self.clock()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                now = self.clock()
                alerts = self.engine.tick(now)
                due = self.evaluated_through > self.saved_mark and now - last_mark >= MARK_SECONDS
                if alerts or due:
                    last_mark = now
                    self._save(alerts, force_mark=due)
            except Exception:  # noqa: BLE001
                log.exception("automations: the periodic check failed")

    async def _rebuild(self) -> None:
        salt = await self.writer.execute(store.salt)
        cut = await self.reader.run(store.last_event_id)
        mark = await self.reader.run(store.mark)
        trips = await self.reader.run(store.load_trips)
        engine = Engine(self.settings, salt)
        engine.load_trips(trips)
        recipes = self.settings.recipes
        windowed = [name for name in ("did_burn", "abandon", "carrier", "voicemail") if recipes[name].enabled]
        if windowed:
            rows = await self.reader.run(store.recent_finished)
            facts = [from_call_row(r, r["event_id"] or 0) for r in rows if r["event_id"] is None or r["event_id"] <= cut]
            for name in windowed:
                engine.rebuild(name, facts)
        now = self.clock()
        if recipes["pause"].enabled:
            rows = await self.reader.run(store.agent_events, now - AGENT_HISTORY_SECONDS)
            engine.rebuild("pause", [_agent_fact(r) for r in rows if r["id"] <= cut])
        caught: list[Fact] = []
        if mark is not None and mark < cut:
            rows = await self.reader.run(store.events_after, mark, now - CATCH_UP_SECONDS, CATCH_UP_MAX)
            caught = [f for f in (_catch_up_fact(r) for r in rows if r["id"] <= cut) if f is not None]
        alerts = engine.feed(caught) + engine.settle(now)
        self.engine, self.cut = engine, cut
        self.evaluated_through = cut
        self.saved_mark = mark or 0
        log.info("automations: windows rebuilt up to event %d (%d events caught up, %d alerts)", cut, len(caught),
                 len(alerts))
        self._save(alerts, force_mark=mark != cut)

    # -- reading ---------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        return self.engine.status(self.clock())

    def apply_settings(self, settings: AutomationSettings) -> None:
        """New settings: windows are rebuilt from the store (run ``start`` again)."""
        self.settings = settings


def _decoded(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _agent_fact(row: dict[str, Any]) -> Fact:
    ev = _decoded(row.get("event_json"))
    return Fact(int(row["id"]), row["source"], row["event_type"], event_time(ev.get("occurred_at"), row["received_at"]),
                agent=ev.get("agent"))


def _catch_up_fact(row: dict[str, Any]) -> Fact | None:
    """A call event stored after the last evaluated one (the per-call recipes look at it again)."""
    ev = _decoded(row.get("event_json"))
    if row.get("call_test") or ev.get("test"):
        return None
    status = ev.get("status")
    return Fact(int(row["id"]), row["source"], row["event_type"], event_time(ev.get("occurred_at"), row["received_at"]),
                call_id=ev.get("call_id"), status=status, first_initiated=status == INITIATED,
                first_machine=machine(status, ev.get("answered_by")), outcome=row.get("call_outcome"),
                call_status=row.get("call_status"), direction=row.get("call_direction"),
                from_number=row.get("call_from"), to_number=row.get("call_to"),
                did=row.get("call_did") or row.get("call_from"), campaign=row.get("call_campaign"),
                agent=row.get("call_agent"), answered_by=ev.get("answered_by"))
