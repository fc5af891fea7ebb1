"""Synthetic call streams for the recipe tests."""

from __future__ import annotations

import itertools

from connector.automations.facts import Fact

_ids = itertools.count(1)


def call(outcome: str = "connected", *, did: str | None = "+12025550100", campaign: str | None = "Q1",
         sip: int | None = None, status: str | None = None, event_id: int | None = None, at: float = 1_700_000_000.0,
         direction: str | None = "outbound") -> Fact:
    """A call that just finished with ``outcome``."""
    return Fact(event_id if event_id is not None else next(_ids), "dialer", "call.completed", at,
                call_id=f"c{next(_ids)}", status=status, finished=True, outcome=outcome, call_status=status,
                direction=direction, from_number=did, to_number="+12025559999", did=did, campaign=campaign,
                sip_code=sip)


def alerts_at(evaluate, state, facts) -> list[tuple[int, object]]:
    """Feed ``facts`` in order; (index, alert) for every alert raised."""
    found = []
    for index, fact in enumerate(facts):
        state, alerts = evaluate(state, fact)
        found += [(index, alert) for alert in alerts]
    return found
