"""Agent attendance from agent events, and the pause alarm.

Agent events (``agent.login``, ``agent.logout``, ``agent.pause``, ``agent.resume`` and their usual
synonyms) give, per agent and day, the time logged in, the time paused and the number of pauses.
A pause that runs ``max_minutes`` or longer raises one alert (and ``on_overrun``) while it still runs
(:func:`tick`, called every few seconds) or, at the latest, when it ends.  Times are the sender's
event times; days are local calendar days (``day_start``), an interval over midnight is split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.automations.facts import Fact
from connector.automations.windows import Alert, alert_id

NAME = "pause"
KINDS = {
    "login": "login", "logged_in": "login", "logon": "login", "online": "login", "signin": "login",
    "logout": "logout", "logged_out": "logout", "logoff": "logout", "offline": "logout", "signout": "logout",
    "pause": "pause", "paused": "pause", "break": "pause", "not_ready": "pause", "away": "pause",
    "resume": "resume", "resumed": "resume", "unpause": "resume", "ready": "resume", "available": "resume",
}
KEEP_DAYS = 8


def local_day_start(ts: float) -> float:
    moment = datetime.fromtimestamp(ts).replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.timestamp()


@dataclass(slots=True)
class Settings:
    enabled: bool = True
    max_minutes: float = 15.0
    on_overrun: str = ""
    notify: bool = True


@dataclass(slots=True)
class Agent:
    login_at: float | None = None
    pause_at: float | None = None
    alerted: bool = False  # the running pause has raised its alert
    pause_event: int | None = None


@dataclass(slots=True)
class Day:
    logged_in: float = 0.0  # seconds
    paused: float = 0.0
    pauses: int = 0


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    day_start: Callable[[float], float] = local_day_start
    agents: dict[str, Agent] = field(default_factory=dict)
    days: dict[tuple[str, float], Day] = field(default_factory=dict)


def kind_of(event_type: str) -> str | None:
    name = event_type.lower()
    if not name.startswith("agent."):
        return None
    return KINDS.get(name[6:].replace("-", "_").replace(".", "_"))


def _day(state: State, agent: str, ts: float) -> Day:
    key = (agent, state.day_start(ts))
    day = state.days.get(key)
    if day is None:
        day = state.days[key] = Day()
        if len(state.days) > 64 * KEEP_DAYS:
            oldest = state.day_start(ts) - KEEP_DAYS * 86400
            for stale in [k for k in state.days if k[1] < oldest]:
                del state.days[stale]
    return day


def _add(state: State, agent: str, start: float, end: float, what: str) -> None:
    """Add the interval [start, end) to the agent's days, split at midnight."""
    while end > start:
        begin = state.day_start(start)
        next_day = state.day_start(begin + 86400 + 7200)  # past the next midnight, whatever DST did
        stop = min(end, next_day)
        day = _day(state, agent, start)
        setattr(day, what, getattr(day, what) + (stop - start))
        start = stop


def push(state: State, fact: Fact) -> Agent | None:
    """Apply one agent event to the agent's state and days (no alert)."""
    kind = kind_of(fact.event_type)
    if kind is None or not fact.agent:
        return None
    agent = state.agents.setdefault(fact.agent, Agent())
    t = fact.at
    if kind == "login":
        if agent.login_at is None:
            agent.login_at = t
    elif kind == "pause":
        if agent.login_at is None:  # paused without a login we saw: logged in from here
            agent.login_at = t
        if agent.pause_at is None:
            agent.pause_at, agent.alerted, agent.pause_event = t, False, fact.event_id
            _day(state, fact.agent, t).pauses += 1
    elif kind in ("resume", "logout"):
        if agent.pause_at is not None:
            _add(state, fact.agent, agent.pause_at, max(t, agent.pause_at), "paused")
            agent.pause_at, agent.pause_event, agent.alerted = None, None, False
        if kind == "logout" and agent.login_at is not None:
            _add(state, fact.agent, agent.login_at, max(t, agent.login_at), "logged_in")
            agent.login_at = None
    return agent


def _overrun(state: State, name: str, agent: Agent, now: float, event_id: int | None) -> list[Alert]:
    s = state.settings
    if agent.pause_at is None or agent.alerted or now - agent.pause_at < s.max_minutes * 60 - 1e-6:
        return []
    agent.alerted = True
    minutes = (now - agent.pause_at) / 60
    started = datetime.fromtimestamp(agent.pause_at).strftime("%H:%M")
    message = f"Agent {name} has been paused {minutes:.0f} min (since {started}), over the {s.max_minutes:g} min limit"
    fields = {"agent": name, "minutes": round(minutes, 1), "max_minutes": s.max_minutes,
              "paused_since": datetime.fromtimestamp(agent.pause_at).astimezone().isoformat(timespec="seconds")}
    ids = [i for i in (agent.pause_event, event_id) if i is not None]
    evidence = {"paused_at": agent.pause_at, "minutes": round(minutes, 1), "max_minutes": s.max_minutes,
                "event_ids": ids}
    return [Alert(alert_id(state.salt, NAME, name, "alert", int(agent.pause_at)), NAME, name, "alert", message,
                  fields, evidence, s.on_overrun, s.notify, now, event_id)]


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    kind = kind_of(fact.event_type)
    if kind is None or not fact.agent:
        return state, []
    agent = state.agents.get(fact.agent)
    alerts: list[Alert] = []
    if kind in ("resume", "logout") and agent is not None:  # a pause that ends over the limit
        alerts = _overrun(state, fact.agent, agent, fact.at, fact.event_id)
    push(state, fact)
    return state, alerts


def tick(state: State, now: float) -> list[Alert]:
    """Pauses running over the limit now (a few agents at most are paused at a time)."""
    alerts: list[Alert] = []
    for name, agent in state.agents.items():
        if agent.pause_at is not None and not agent.alerted:
            alerts += _overrun(state, name, agent, now, None)
    return alerts


def attendance(state: State, now: float | None = None) -> list[dict[str, Any]]:
    """Today's figures per agent, open intervals counted up to ``now``."""
    now = time.time() if now is None else now
    today = state.day_start(now)
    rows = []
    for name in sorted({a for a, d in state.days if d == today} | set(state.agents)):
        day = state.days.get((name, today), Day())
        agent = state.agents.get(name, Agent())
        logged, paused = day.logged_in, day.paused
        if agent.login_at is not None:
            logged += max(0.0, now - max(agent.login_at, today))
        if agent.pause_at is not None:
            paused += max(0.0, now - max(agent.pause_at, today))
        state_name = "paused" if agent.pause_at is not None else ("logged in" if agent.login_at is not None else "logged out")
        rows.append({"agent": name, "state": state_name, "logged_in_minutes": round(logged / 60, 1),
                     "pause_minutes": round(paused / 60, 1), "pauses": day.pauses,
                     "paused_minutes_now": round((now - agent.pause_at) / 60, 1) if agent.pause_at is not None else None})
    return rows


def status(state: State, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    running = [(now - a.pause_at) / 60 for a in state.agents.values() if a.pause_at is not None]
    tripped = sorted(n for n, a in state.agents.items() if a.alerted)
    figure = {"paused": len(running), "longest_minutes": round(max(running), 1) if running else None}
    return {"figure": figure, "threshold": state.settings.max_minutes, "unit": "min", "tripped": tripped,
            "subjects": len(state.agents), "attendance": attendance(state, now)}


