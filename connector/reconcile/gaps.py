"""Downtime from the heartbeat (pure): the stretches callsync was receiving, the gaps between them,
and the dashboard's sentence about the last one.

A gap is any interval of at least ``GAP_SECONDS`` in which no stretch was receiving: callsync stopped,
was killed, or the machine slept (a beat that comes ``GAP_SECONDS`` late starts a new stretch).
Stretches of several processes on one store (``serve --workers``) are merged first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

GAP_SECONDS = 60.0
WINDOW_DAYS = 7  # /api/metrics lists the gaps of the last week
NOTICE_HOURS = 24  # the dashboard speaks of a gap that ended this recently


def find_gaps(stretches: Iterable[tuple[float, float]], *, since: float,
              min_gap: float = GAP_SECONDS) -> list[tuple[float, float]]:
    """``(from, to)`` of every gap between the stretches (``(started_at, last_beat)``) that ended after
    ``since``, oldest first."""
    merged: list[list[float]] = []
    for start, end in sorted(stretches):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    gaps = [(a[1], b[0]) for a, b in zip(merged, merged[1:]) if b[0] - a[1] >= min_gap]
    return [g for g in gaps if g[1] >= since]


def with_counts(gaps: Sequence[tuple[float, float]], reconciled: Iterable[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """Each gap as ``{"from", "to", "reconciled"}``: the calls reconciliation filled in or completed that
    started during it."""
    starts = [start for _source, _kind, start in reconciled]
    return [{"from": round(a, 3), "to": round(b, 3), "reconciled": sum(1 for s in starts if a <= s <= b)}
            for a, b in gaps]


def _clock(ts: float, now: float) -> str:
    moment, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    return moment.strftime("%H:%M") if moment.date() == today.date() else moment.strftime("%b %d %H:%M")


def gap_sentence(gap: dict[str, Any], *, reconciling: Sequence[str], others: Sequence[str],
                 now: float | None = None) -> str:
    """"callsync was off from 14:02 to 16:40; 37 calls filled in from Twilio; other sources cannot be
    back-filled — check their delivery logs"."""
    now = time.time() if now is None else now
    text = f"callsync was off from {_clock(gap['from'], now)} to {_clock(gap['to'], now)}"
    if reconciling:
        n = gap["reconciled"]
        text += f"; {n} call{'' if n == 1 else 's'} filled in from Twilio"
        if others:
            text += "; other sources cannot be back-filled — check their delivery logs"
    elif others:
        text += "; senders cannot be back-filled — check their delivery logs for what they gave up on"
    return text


def dashboard_notice(gaps: Sequence[dict[str, Any]], sources: dict[str, Any], now: float) -> str | None:
    """The sentence about the latest gap, when it ended within ``NOTICE_HOURS``."""
    recent = [g for g in gaps if now - g["to"] <= NOTICE_HOURS * 3600]
    if not recent:
        return None
    reconciling = sorted(n for n, s in sources.items() if getattr(s, "reconcile", False))
    others = sorted(n for n in sources if n not in reconciling)
    return gap_sentence(recent[-1], reconciling=reconciling, others=others, now=now)
