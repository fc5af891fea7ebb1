"""Voicemail: on a call's first voicemail / answering-machine detection, run ``on_detected`` (drop a
recorded message or release the agent through the dialer's API).

Detection is an event whose status is voicemail (``call.voicemail.detected``, a ``VM`` disposition,
Twilio's ``AnsweredBy=machine_*`` ...).  One alert per call (shown, notified only with
``notify = true``); the live figure is the share of voicemail among the last finished calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.automations.facts import Fact, machine
from connector.automations.windows import Alert, Ring, alert_id, percent, rounded

NAME = "voicemail"
RECENT = 100


@dataclass(slots=True)
class Settings:
    enabled: bool = False
    on_detected: str = ""
    notify: bool = False


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    recent: Ring = field(default_factory=lambda: Ring(RECENT, 1))


def push(state: State, fact: Fact) -> None:
    if fact.finished:
        state.recent.push((fact.event_id, 1 if machine(fact.call_status, fact.answered_by) else 0))


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    s = state.settings
    push(state, fact)
    if not fact.first_machine or not fact.call_id:
        return state, []
    subject = f"{fact.source}/{fact.call_id}"
    message = f"Voicemail detected on call {fact.call_id} to {fact.to_number or 'an unknown number'}"
    message += f" (agent {fact.agent})" if fact.agent else ""
    fields = {"call_id": fact.call_id, "source": fact.source, "from": fact.from_number, "to": fact.to_number,
              "agent": fact.agent, "campaign": fact.campaign, "did": fact.did, "answered_by": fact.answered_by}
    evidence = {"event_type": fact.event_type, "answered_by": fact.answered_by, "event_ids": [fact.event_id]}
    alert = Alert(alert_id(state.salt, NAME, subject, "alert", 1), NAME, subject, "alert", message, fields,
                  evidence, s.on_detected, s.notify, fact.at, fact.event_id)
    return state, [alert]


def status(state: State) -> dict[str, Any]:
    calls, machines = len(state.recent), state.recent.sums[0]
    figure = {"calls": calls, "voicemail": machines, "rate": rounded(percent(machines, calls)) if calls else None}
    return {"figure": figure, "threshold": None, "unit": "%", "tripped": [], "subjects": calls}
