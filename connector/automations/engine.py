"""Every enabled recipe's state, fed one fact at a time: O(1) per event for each recipe.

:meth:`Engine.feed` evaluates new events (alerts come back); :meth:`Engine.rebuild` refills the
windows from what the store holds at start-up without alerting, then :meth:`Engine.settle` judges
each subject once on its rebuilt figures (a crossing that happened while nothing evaluated it -
callsync was down, or stopped between storing an event and storing its alert - is raised then, under
the same id).  Thresholds' armed/tripped state and crossing counts are loaded and saved by the caller
(:meth:`Engine.load_trips`, :meth:`Engine.drain_trips`): they change only when something crosses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from connector.automations import abandon, carrier, did_burn, pause, voicemail
from connector.automations.facts import Fact
from connector.automations.settings import RECIPES, TITLES, AutomationSettings
from connector.automations.windows import Alert

WINDOWED = ("did_burn", "abandon", "carrier")  # recipes whose thresholds keep armed/tripped state


class Engine:
    def __init__(self, settings: AutomationSettings, salt: str = "",
                 day_start: Callable[[float], float] | None = None) -> None:
        self.settings = settings
        self.salt = salt
        self.states: dict[str, Any] = {}
        for name, module in RECIPES.items():
            state = module.State(settings.recipes[name], salt)
            if name == "pause" and day_start is not None:
                state.day_start = day_start
            self.states[name] = state
        self.evaluated = 0

    def enabled(self) -> list[str]:
        return [name for name in RECIPES if self.settings.recipes[name].enabled]

    # -- live --------------------------------------------------------------------------
    def feed(self, facts: Iterable[Fact]) -> list[Alert]:
        alerts: list[Alert] = []
        active = [(RECIPES[name].evaluate, self.states[name]) for name in self.enabled()]
        for fact in facts:
            self.evaluated += 1
            for evaluate, state in active:
                alerts += evaluate(state, fact)[1]
        return alerts

    def tick(self, now: float | None = None) -> list[Alert]:
        """Time-driven checks (a pause running over its limit)."""
        if not self.settings.recipes["pause"].enabled:
            return []
        return pause.tick(self.states["pause"], time.time() if now is None else now)

    # -- start-up ------------------------------------------------------------------------
    def load_trips(self, rows: Iterable[tuple[str, str, str, bool, int]]) -> None:
        """Armed/tripped state and crossing counts as saved: ``(recipe, subject, level, armed, seq)``."""
        by_recipe: dict[str, list[tuple[str, str, bool, int]]] = {}
        for recipe, subject, level, armed, seq in rows:
            by_recipe.setdefault(recipe, []).append((subject, level, armed, seq))
        for recipe in WINDOWED:
            self.states[recipe].trips.load(by_recipe.get(recipe, []))

    def drain_trips(self) -> list[tuple[str, str, str, bool, int]]:
        """Thresholds that changed (tripped or re-armed) since the last drain, to save with the alerts."""
        return [(recipe, *row) for recipe in WINDOWED for row in self.states[recipe].trips.drain()]

    def rebuild(self, recipe: str, facts: Iterable[Fact]) -> None:
        """Refill a recipe's windows from stored calls (oldest first) without judging them."""
        state = self.states[recipe]
        for fact in facts:
            if recipe == "did_burn" and did_burn.counts(fact):
                did_burn.push(state, fact)
            elif recipe == "abandon" and abandon.counts(fact):
                abandon.push(state, fact)
            elif recipe == "carrier" and carrier.counts(fact):
                carrier.push(state, fact)
            elif recipe == "voicemail":
                voicemail.push(state, fact)
            elif recipe == "pause":
                pause.push(state, fact)

    def settle(self, now: float | None = None) -> list[Alert]:
        now = time.time() if now is None else now
        alerts: list[Alert] = []
        for name, module in (("did_burn", did_burn), ("abandon", abandon), ("carrier", carrier)):
            if self.settings.recipes[name].enabled:
                alerts += module.settle(self.states[name], now)
        return alerts + self.tick(now)

    # -- reading -------------------------------------------------------------------------
    def status(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each recipe: enabled, live figure, threshold, armed/tripped (``/api/automations``)."""
        now = time.time() if now is None else now
        rows = []
        for name, module in RECIPES.items():
            state = self.states[name]
            info = pause.status(state, now) if name == "pause" else module.status(state)
            info = {"name": name, "title": TITLES[name], "enabled": bool(self.settings.recipes[name].enabled)} | info
            info["state"] = "tripped" if info["tripped"] else "armed"
            info["action"] = next((getattr(state.settings, k) for k in dir(state.settings)
                                   if k.startswith("on_") and getattr(state.settings, k)), "")
            rows.append(info)
        return rows


