"""Caller-ID country check: an international call must go out with a caller ID of its destination's country.

On a call's first ``call.initiated`` (or any event that says the call was dialled) to a destination
outside ``home``, the countries of the caller ID and of the destination (``phonenumbers``; numbers
without ``+`` are read in ``default_region``) must match.  A mismatch raises an alert - once per call -
naming a number of that country from ``pool`` when there is one, and runs ``on_mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re
from functools import lru_cache

import phonenumbers

from connector.automations.facts import Fact
from connector.automations.windows import Alert, Ring, alert_id, percent, rounded

NAME = "caller_id"
RECENT = 100  # the live figure: mismatches among the last international calls checked
_REGIONS = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_NOT_DIGIT = re.compile(r"\D")


@dataclass(slots=True)
class Settings:
    enabled: bool = True
    home: list[str] = field(default_factory=lambda: ["US", "CA"])
    pool: dict[str, list[str]] = field(default_factory=dict)  # country -> caller IDs provisioned for it
    default_region: str = "US"
    on_mismatch: str = ""
    notify: bool = True


@dataclass(slots=True)
class State:
    settings: Settings
    salt: str = ""
    recent: Ring = field(default_factory=lambda: Ring(RECENT, 1))


def country(number: str | None, default_region: str) -> str | None:
    """The ISO country of a phone number, None when it cannot be read.  A country calling code with one
    country (+49) answers at once; NANP numbers (+1) by their area code, cached; others are parsed."""
    if not number:
        return None
    digits = _NOT_DIGIT.sub("", number)
    if number.lstrip().startswith("+") and len(digits) >= 7:
        for size in (1, 2, 3):
            regions = _REGIONS.get(int(digits[:size]))
            if regions:
                if len(regions) == 1 and regions[0] != "001":
                    return regions[0]
                if size == 1 and digits[0] == "1":
                    return _parsed("+" + digits[:4] + "5550123", None)  # NANP: the area code decides
                break
    return _parsed(number, None if number.lstrip().startswith("+") else default_region)


@lru_cache(maxsize=4096)
def _parsed(number: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed) if phonenumbers.is_possible_number(parsed) else None


def evaluate(state: State, fact: Fact) -> tuple[State, list[Alert]]:
    s = state.settings
    if not fact.first_initiated or fact.direction == "inbound":
        return state, []
    destination = country(fact.to_number, s.default_region)
    if destination is None or destination in s.home:
        return state, []
    caller = country(fact.from_number, s.default_region)
    mismatch = caller != destination
    state.recent.push((fact.event_id, 1 if mismatch else 0))
    if not mismatch:
        return state, []
    suggestion = next(iter(s.pool.get(destination) or []), None)
    subject = f"{fact.source}/{fact.call_id}"
    message = (f"Call {fact.call_id} to {fact.to_number} ({destination}) goes out with caller ID "
               f"{fact.from_number or 'none'} ({caller or 'unknown country'})")
    message += f"; use {suggestion}" if suggestion else f"; no {destination} number in the pool"
    fields = {"call_id": fact.call_id, "source": fact.source, "from": fact.from_number, "to": fact.to_number,
              "caller_country": caller or "", "destination_country": destination, "suggested": suggestion or "",
              "did": fact.did, "campaign": fact.campaign, "agent": fact.agent}
    evidence = {"caller_country": caller, "destination_country": destination, "home": list(s.home),
                "suggested": suggestion, "event_ids": [fact.event_id]}
    alert = Alert(alert_id(state.salt, NAME, subject, "alert", 1), NAME, subject, "alert", message, fields,
                  evidence, s.on_mismatch, s.notify, fact.at, fact.event_id)
    return state, [alert]


def status(state: State) -> dict[str, Any]:
    checked, mismatched = len(state.recent), state.recent.sums[0]
    figure = {"checked": checked, "mismatched": mismatched,
              "rate": rounded(percent(mismatched, checked)) if checked else None}
    return {"figure": figure, "threshold": None, "unit": "%", "tripped": [], "subjects": checked}
