"""Abandon-rate alarm, per campaign, as dialer compliance counts it.

The window is the campaign's last ``window`` finished calls; the rate counts the calls a person
answered among them: abandoned ÷ (connected + abandoned) × 100, where connected includes sales and
no-answer, busy, voicemail and failed calls count in neither.  It is judged once the window holds
``min_calls`` such calls.  At ``notify_at`` % an alert goes to the supervisor; at ``act_at`` % the
``on_act`` action runs too (e.g. lower the pacing ratio).  Each threshold trips once per crossing and
re-arms only when the rate falls ``rearm_points`` under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.automations.facts import Fact
from connector.automations.windows import TRIPPED, Alert, Ring, Trips, alert_id, percent, rounded
from connector.model import OUTCOME_ABANDONED, OUTCOME_CONNECTED, OUTCOME_SALE

NAME = "abandon"
CONNECTED = frozenset({OUTCOME_CONNECTED, OUTCOME_SALE})
NO_CAMPAIGN = ""
LEVELS = ("notify", "act")


@dataclass(slots=True)
class Settings:
    enabled: bool = True
    window: int = 500
    notify_at: float = 2.5
    act_at: float = 3.0
    rearm_points: float = 0.5
    min_calls: int = 100
    on_act: str = ""
    notify: bool = True


@dataclass(slots=True)
class Campaign:
    ring: Ring
    rate: float | None = None


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    trips: Trips = field(default_factory=Trips)


def counts(fact: Fact) -> bool:
    return fact.finished


def push(state: State, fact: Fact) -> Campaign:
    key = fact.campaign or NO_CAMPAIGN
    campaign = state.campaigns.get(key)
    if campaign is None:
        campaign = state.campaigns[key] = Campaign(Ring(state.settings.window, 2))
    connected = 1 if fact.outcome in CONNECTED else 0
    abandoned = 1 if fact.outcome == OUTCOME_ABANDONED else 0
    campaign.ring.push((fact.event_id, connected, abandoned))
    return campaign


def figures(state: State, campaign: Campaign) -> dict[str, Any]:
    connected, abandoned = campaign.ring.sums
    answered = connected + abandoned
    rate = percent(abandoned, answered) if answered >= state.settings.min_calls and answered else None
    return {"calls": len(campaign.ring), "connected": connected, "abandoned": abandoned, "rate": rounded(rate, 3),
            "exact_rate": rate}


def judge(state: State, key: str, campaign: Campaign, event_id: int | None, at: float) -> list[Alert]:
    s = state.settings
    connected, abandoned = campaign.ring.sums
    answered = connected + abandoned
    rate = campaign.rate = 100.0 * abandoned / answered if answered >= s.min_calls and answered else None
    alerts = []
    for level, threshold in (("notify", s.notify_at), ("act", s.act_at)):
        if state.trips.check(key, level, rate, threshold, s.rearm_points) != TRIPPED:
            continue
        fig = figures(state, campaign)
        fig.pop("exact_rate")
        seq = state.trips.get(key, level).seq
        name = key or "(no campaign)"
        verb = "over the alarm" if level == "act" else "at the warning"
        message = (f"Campaign {name}: abandon rate {rate:.2f}% over its last {fig['calls']} calls "
                   f"({fig['abandoned']} abandoned, {fig['connected']} connected), {verb} level of {threshold}%")
        fields = {"campaign": key, "rate": fig["rate"], "threshold": threshold, "level": level,
                  "abandoned": fig["abandoned"], "connected": fig["connected"], "calls": fig["calls"]}
        ids = [event_id] if event_id is not None else []
        ids += [i for i in campaign.ring.recent_ids(where=1) if i != event_id]
        evidence = fig | {"window": s.window, "threshold": threshold, "formula": "abandoned / (connected + abandoned)",
                          "event_ids": ids}
        action = s.on_act if level == "act" else ""
        alerts.append(Alert(alert_id(state.salt, NAME, key, level, seq), NAME, key, level, message, fields,
                            evidence, action, s.notify, at, event_id))
    return alerts


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    if not counts(fact):
        return state, []
    campaign = push(state, fact)
    return state, judge(state, fact.campaign or NO_CAMPAIGN, campaign, fact.event_id, fact.at)


def settle(state: State, at: float) -> list[Alert]:
    alerts: list[Alert] = []
    for key, campaign in state.campaigns.items():
        last = campaign.ring.entries[-1][0] if campaign.ring.entries else None
        alerts += judge(state, key, campaign, last, at)
    return alerts


def status(state: State) -> dict[str, Any]:
    s = state.settings
    worst = max(((c.rate, k) for k, c in state.campaigns.items() if c.rate is not None), default=None)
    tripped = sorted({k for (k, level), trip in state.trips.known.items() if not trip.armed})
    figure = None if worst is None else {"campaign": worst[1], "rate": round(worst[0], 3)}
    return {"figure": figure, "threshold": {"notify_at": s.notify_at, "act_at": s.act_at}, "unit": "%",
            "tripped": tripped, "subjects": len(state.campaigns)}
