"""What every recipe shares: windows kept incrementally, crossings with re-arm, alerts with stable ids.

* :class:`Ring` keeps the last ``size`` entries of one subject (a DID, a campaign, a route) with
  running sums of their counted columns: a push costs O(1) whatever the window's size.
* :class:`Trip` is one threshold of one subject: it trips once when the figure reaches the threshold
  (at or above) and re-arms only after the figure falls ``rearm_points`` below it.  Each trip raises
  the subject's crossing sequence, which names the alert.
* :func:`alert_id` hashes the store's salt, the recipe, the subject, the level and the crossing
  sequence: the same crossing always gets the same id (a retried sink, a restart that evaluates a
  crossing again), a new crossing a new one.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EPSILON = 1e-9  # figures are percentages computed from integers: 3/120*100 must reach 2.5
TRIPPED = "tripped"
REARMED = "rearmed"
EVIDENCE_EVENTS = 10  # event ids named in an alert's evidence besides the one that tripped it


class Ring:
    """The last ``size`` entries of a subject: ``(event_id, v0, v1, ...)`` with running sums of v0.."""

    __slots__ = ("entries", "sums")

    def __init__(self, size: int, width: int) -> None:
        self.entries: deque[tuple[Any, ...]] = deque(maxlen=max(1, size))
        self.sums = [0] * width

    def push(self, entry: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Add an entry; returns the entry that fell out of the window (None while it fills)."""
        entries, sums = self.entries, self.sums
        old = entries[0] if len(entries) == entries.maxlen else None
        entries.append(entry)
        if len(sums) == 1:  # the usual widths, without a loop: this runs for every event and window
            sums[0] += entry[1] - (old[1] if old is not None else 0)
        elif len(sums) == 2:
            if old is not None:
                sums[0] += entry[1] - old[1]
                sums[1] += entry[2] - old[2]
            else:
                sums[0] += entry[1]
                sums[1] += entry[2]
        else:
            for i in range(len(sums)):
                sums[i] += entry[i + 1] - (old[i + 1] if old is not None else 0)
        return old

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        return self.entries.maxlen or 0

    def recent_ids(self, n: int = EVIDENCE_EVENTS, where: int | None = None) -> list[int]:
        """Ids of the newest ``n`` entries (only those whose column ``where`` is non-zero), newest first."""
        found: list[int] = []
        for entry in reversed(self.entries):
            if where is None or entry[where + 1]:
                found.append(entry[0])
                if len(found) >= n:
                    break
        return found


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


class Trip:
    """One threshold of one subject: armed until the figure reaches it, then armed again only once
    the figure is ``rearm_points`` under it.  ``seq`` counts the crossings (it names the alerts)."""

    __slots__ = ("armed", "seq")

    def __init__(self, armed: bool = True, seq: int = 0) -> None:
        self.armed = armed
        self.seq = seq

    def check(self, value: float | None, threshold: float, rearm_points: float) -> str | None:
        """``TRIPPED`` on the crossing, ``REARMED`` when it re-arms, else None (also for no figure)."""
        if value is None:
            return None
        if self.armed:
            if value >= threshold - EPSILON:
                self.armed = False
                self.seq += 1
                return TRIPPED
        elif value < threshold - rearm_points - EPSILON:
            self.armed = True
            return REARMED
        return None

    def __repr__(self) -> str:
        return f"Trip(armed={self.armed}, seq={self.seq})"


def alert_id(salt: str, recipe: str, subject: str, level: str, seq: int | str) -> str:
    text = "\x1f".join((salt, recipe, subject, level, str(seq)))
    return "al_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(slots=True)
class Alert:
    """What a recipe raises: stored with its evidence, shown, notified, and maybe acted on."""

    id: str
    recipe: str
    subject: str
    level: str  # "alert", or the threshold it crossed ("notify" / "act" for the abandon rate)
    message: str
    fields: dict[str, Any]  # what action templates may use: {did}, {campaign}, {rate}, ...
    evidence: dict[str, Any]  # the window's figures and "event_ids": the events that tripped it
    action: str = ""  # the [actions.<name>] to run, "" for none
    notify: bool = True  # sent to the [alerts] sinks and shown as a desktop notification
    created_at: float = 0.0
    event_id: int | None = None  # the event that tripped it


@dataclass(slots=True)
class Trips:
    """A recipe's thresholds by ``(subject, level)``, and which changed since they were last saved."""

    known: dict[tuple[str, str], Trip] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)

    def get(self, subject: str, level: str = "alert") -> Trip:
        trip = self.known.get((subject, level))
        if trip is None:
            trip = self.known[(subject, level)] = Trip()
        return trip

    def check(self, subject: str, level: str, value: float | None, threshold: float, rearm: float) -> str | None:
        change = self.get(subject, level).check(value, threshold, rearm)
        if change is not None:
            self.dirty.add((subject, level))
        return change

    def load(self, rows: Iterable[tuple[str, str, bool, int]]) -> None:
        for subject, level, armed, seq in rows:
            self.known[(subject, level)] = Trip(bool(armed), int(seq))

    def drain(self) -> list[tuple[str, str, bool, int]]:
        """The changed thresholds as ``(subject, level, armed, seq)``, once."""
        rows = [(s, lv, self.known[(s, lv)].armed, self.known[(s, lv)].seq) for s, lv in sorted(self.dirty)]
        self.dirty.clear()
        return rows


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
