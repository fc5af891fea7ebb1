"""Carrier failures: the failure rate of each route over its last ``window`` attempts, by SIP code class.

A route is the call's DID (``did_id``, else the ``from`` number).  An attempt failed when its final
SIP code is 4xx, 5xx or 6xx (codes in ``ignore_codes`` - 487, the caller's own cancel - excepted) or
the call failed without a code.  Once the window holds ``min_calls`` attempts, a failure rate at or
above ``max_failure_rate`` % raises one alert per crossing naming the top codes (486, 480, 503 ...),
and runs ``on_failure``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connector.automations.facts import Fact
from connector.automations.windows import TRIPPED, Alert, Ring, Trips, alert_id, percent, rounded
from connector.model import FAILED, OUTCOME_FAILED

NAME = "carrier"
NO_CODE = 0  # a failed call that reported no SIP code
TOP_CODES = 3


@dataclass(slots=True)
class Settings:
    enabled: bool = True
    window: int = 200
    max_failure_rate: float = 20.0
    min_calls: int = 50
    rearm_points: float = 0.5
    ignore_codes: list[int] = field(default_factory=lambda: [487])
    on_failure: str = ""
    notify: bool = True


@dataclass(slots=True)
class Route:
    ring: Ring
    codes: Counter[int] = field(default_factory=Counter)  # failed attempts in the window by code
    rate: float | None = None


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    trips: Trips = field(default_factory=Trips)


def failure_code(fact: Fact, ignore: list[int]) -> int | None:
    """The code this attempt failed with (``NO_CODE`` when it failed without one), None if it did not fail."""
    code = fact.sip_code
    if code is not None and 400 <= code <= 699 and code not in ignore:
        return code
    if fact.outcome == OUTCOME_FAILED or fact.call_status == FAILED:
        return code if code is not None and code >= 400 and code not in ignore else NO_CODE
    return None


def code_class(code: int) -> str:
    return f"{code // 100}xx" if code else "no code"


def counts(fact: Fact) -> bool:
    return fact.finished and bool(fact.did)


def push(state: State, fact: Fact) -> Route:
    route = state.routes.get(fact.did)  # type: ignore[arg-type]
    if route is None:
        route = state.routes[fact.did] = Route(Ring(state.settings.window, 1))  # type: ignore[index]
    code = failure_code(fact, state.settings.ignore_codes)
    old = route.ring.push((fact.event_id, 0 if code is None else 1, code))
    if old is not None and old[1]:
        route.codes[old[2]] -= 1
        if route.codes[old[2]] <= 0:
            del route.codes[old[2]]
    if code is not None:
        route.codes[code] += 1
    return route


def figures(state: State, route: Route) -> dict[str, Any]:
    calls, failed = len(route.ring), route.ring.sums[0]
    rate = percent(failed, calls) if calls >= state.settings.min_calls else None
    classes: Counter[str] = Counter()
    for code, n in route.codes.items():
        classes[code_class(code)] += n
    top = sorted(route.codes.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CODES]
    return {"calls": calls, "failed": failed, "rate": rounded(rate), "exact_rate": rate,
            "classes": dict(sorted(classes.items())), "top_codes": [{"code": c or None, "count": n} for c, n in top]}


def judge(state: State, subject: str, route: Route, event_id: int | None, at: float) -> list[Alert]:
    s = state.settings
    rate = percent(route.ring.sums[0], len(route.ring)) if len(route.ring) >= s.min_calls else None
    route.rate = rate
    if state.trips.check(subject, "alert", rate, s.max_failure_rate, s.rearm_points) != TRIPPED:
        return []
    fig = figures(state, route)
    fig.pop("exact_rate")
    seq = state.trips.get(subject).seq
    top = ", ".join(f"{t['code'] or 'no code'} ×{t['count']}" for t in fig["top_codes"])
    message = (f"Route {subject}: {fig['rate']:.1f}% of its last {fig['calls']} attempts failed "
               f"(top codes {top}), at or over {s.max_failure_rate}%")
    fields = {"route": subject, "did": subject, "rate": fig["rate"], "failed": fig["failed"], "calls": fig["calls"],
              "top_codes": top, "threshold": s.max_failure_rate}
    ids = [event_id] if event_id is not None else []
    ids += [i for i in route.ring.recent_ids(where=0) if i != event_id]
    evidence = fig | {"window": s.window, "threshold": s.max_failure_rate, "event_ids": ids}
    return [Alert(alert_id(state.salt, NAME, subject, "alert", seq), NAME, subject, "alert", message, fields,
                  evidence, s.on_failure, s.notify, at, event_id)]


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    if not counts(fact):
        return state, []
    route = push(state, fact)
    return state, judge(state, fact.did, route, fact.event_id, fact.at)  # type: ignore[arg-type]


def settle(state: State, at: float) -> list[Alert]:
    alerts: list[Alert] = []
    for subject, route in state.routes.items():
        last = route.ring.entries[-1][0] if route.ring.entries else None
        alerts += judge(state, subject, route, last, at)
    return alerts


def status(state: State) -> dict[str, Any]:
    worst = max(((r.rate, k) for k, r in state.routes.items() if r.rate is not None), default=None)
    tripped = sorted(k for (k, _), trip in state.trips.known.items() if not trip.armed)
    figure = None if worst is None else {"route": worst[1], "rate": round(worst[0], 2)}
    return {"figure": figure, "threshold": state.settings.max_failure_rate, "unit": "%", "tripped": tripped,
            "subjects": len(state.routes)}
