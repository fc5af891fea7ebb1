"""DID burn detection: a caller-ID number whose answer rate falls well under its campaign's.

On every finished outbound call: the answer rate of the call's DID (``did_id``, else the ``from``
number) over its last ``window`` calls, against the campaign's baseline - the campaign's answer rate
over its last ``baseline_window`` calls, or the fixed ``baseline``.  When the DID has at least
``min_calls`` calls in its window (and the campaign as many in its own) and the drop
(baseline - rate, in percentage points) reaches ``drop_points``, the DID is burned: one alert per
crossing, and the ``on_burn`` action.  Answered means a person picked up: connected, sale or
abandoned (a voicemail is not an answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.automations.facts import Fact
from connector.automations.windows import TRIPPED, Alert, Ring, Trips, alert_id, percent, rounded
from connector.model import OUTCOME_ABANDONED, OUTCOME_CONNECTED, OUTCOME_SALE

NAME = "did_burn"
ANSWERED = frozenset({OUTCOME_CONNECTED, OUTCOME_SALE, OUTCOME_ABANDONED})
NO_CAMPAIGN = ""


@dataclass(slots=True)
class Settings:
    enabled: bool = True
    window: int = 100
    baseline_window: int = 1000
    baseline: float | None = None  # a fixed baseline answer rate (%), instead of the campaign's
    drop_points: float = 15.0
    min_calls: int = 30
    rearm_points: float = 0.5
    on_burn: str = ""
    notify: bool = True


@dataclass(slots=True)
class Did:
    ring: Ring
    campaign: str = NO_CAMPAIGN
    drop: float | None = None


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    dids: dict[str, Did] = field(default_factory=dict)
    campaigns: dict[str, Ring] = field(default_factory=dict)
    trips: Trips = field(default_factory=Trips)


def counts(fact: Fact) -> bool:
    return fact.finished and bool(fact.did) and fact.direction != "inbound"


def push(state: State, fact: Fact) -> Did:
    """Add a finished call to its DID's and its campaign's windows (no evaluation)."""
    s = state.settings
    answered = 1 if fact.outcome in ANSWERED else 0
    campaign = fact.campaign or NO_CAMPAIGN
    ring = state.campaigns.get(campaign)
    if ring is None:
        ring = state.campaigns[campaign] = Ring(s.baseline_window, 1)
    ring.push((fact.event_id, answered))
    did = state.dids.get(fact.did)  # type: ignore[arg-type]
    if did is None:
        did = state.dids[fact.did] = Did(Ring(s.window, 1))  # type: ignore[index]
    did.ring.push((fact.event_id, answered))
    did.campaign = campaign
    return did


def figures(state: State, did: Did) -> dict[str, Any]:
    s = state.settings
    calls, answered = len(did.ring), did.ring.sums[0]
    base_ring = state.campaigns.get(did.campaign)
    if s.baseline is not None:
        baseline: float | None = float(s.baseline)
    elif base_ring is not None and len(base_ring) >= s.min_calls:
        baseline = percent(base_ring.sums[0], len(base_ring))
    else:
        baseline = None
    rate = percent(answered, calls) if calls else None
    drop = baseline - rate if baseline is not None and rate is not None and calls >= s.min_calls else None
    return {"calls": calls, "answered": answered, "rate": rounded(rate), "baseline": rounded(baseline),
            "drop": rounded(drop), "baseline_calls": len(base_ring) if base_ring is not None else 0}


def drop_of(state: State, did: Did) -> float | None:
    """The DID's drop under its baseline in points, None while either window is too short (no dicts: per event)."""
    s = state.settings
    calls = len(did.ring)
    if calls < s.min_calls:
        return None
    if s.baseline is not None:
        baseline = float(s.baseline)
    else:
        base_ring = state.campaigns.get(did.campaign)
        if base_ring is None or len(base_ring) < s.min_calls:
            return None
        baseline = 100.0 * base_ring.sums[0] / len(base_ring)
    return baseline - 100.0 * did.ring.sums[0] / calls


def judge(state: State, subject: str, did: Did, event_id: int | None, at: float) -> list[Alert]:
    """Compare the DID's figure with its threshold; an alert when it crosses."""
    s = state.settings
    drop = did.drop = drop_of(state, did)
    if state.trips.check(subject, "alert", drop, s.drop_points, s.rearm_points) != TRIPPED:
        return []
    fig = figures(state, did)
    seq = state.trips.get(subject).seq
    campaign = did.campaign or "(no campaign)"
    message = (f"DID {subject} is answered {fig['rate']:.1f}% over its last {fig['calls']} calls, "
               f"{fig['drop']:.1f} points under the {campaign} baseline of {fig['baseline']:.1f}%")
    fields = {"did": subject, "campaign": did.campaign, "rate": fig["rate"], "baseline": fig["baseline"],
              "drop": fig["drop"], "calls": fig["calls"], "answered": fig["answered"]}
    ids = [event_id] if event_id is not None else []
    ids += [i for i in did.ring.recent_ids() if i != event_id]
    evidence = fig | {"window": s.window, "drop_points": s.drop_points, "event_ids": ids}
    return [Alert(alert_id(state.salt, NAME, subject, "alert", seq), NAME, subject, "alert", message, fields,
                  evidence, s.on_burn, s.notify, at, event_id)]


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    """One new event: O(1) - two window pushes and one comparison."""
    if not counts(fact):
        return state, []
    did = push(state, fact)
    return state, judge(state, fact.did, did, fact.event_id, fact.at)  # type: ignore[arg-type]


def settle(state: State, at: float) -> list[Alert]:
    """After a rebuild: judge every DID once on its rebuilt figures (a crossing missed while callsync was
    down is raised now, under the id it would have had)."""
    alerts: list[Alert] = []
    for subject, did in state.dids.items():
        last = did.ring.entries[-1][0] if did.ring.entries else None
        alerts += judge(state, subject, did, last, at)
    return alerts


def status(state: State) -> dict[str, Any]:
    """The live figure: the DID furthest under its baseline."""
    s = state.settings
    worst = max(((d.drop, name) for name, d in state.dids.items() if d.drop is not None), default=None)
    worst = None if worst is None else (round(worst[0], 2), worst[1])
    tripped = sorted(name for (name, _), trip in state.trips.known.items() if not trip.armed)
    figure = None if worst is None else {"did": worst[1], "drop": worst[0]}
    return {"figure": figure, "threshold": s.drop_points, "unit": "points", "tripped": tripped,
            "subjects": len(state.dids)}
