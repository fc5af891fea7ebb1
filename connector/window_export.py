"""The window's Export: what a tab's filters mean to :mod:`connector.export`, and the export run on a
thread so the event loop (webhooks, the window) never waits for it.

Qt-free.  Progress is handed back on the event loop's thread; cancelling stops the export at the
next row and leaves no file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connector import export
from connector.store import faults
from connector.store.db import StoreTarget
from connector.store.events import phone_variants
from connector.window_queries import search_kind

FORMAT_SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl"}
NOUNS = {"calls": ("call", "calls"), "events": ("event", "events")}
FILTER_NAMES = {"source": "source", "event_type": "type", "outcome": "outcome"}


@dataclass(slots=True)
class ExportScope:
    """What of a tab's search and filters the export applies, in words, and as column matches."""

    match: dict[str, list[Any]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExportRequest:
    kind: str  # "calls" | "events"
    path: Path
    fmt: str = "csv"  # "csv" | "jsonl"
    since: float | None = None  # receipt time (calls: their latest event), inclusive
    until: float | None = None  # exclusive
    match: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(slots=True)
class ExportOutcome:
    ok: bool
    rows: int
    cancelled: bool
    message: str


class ExportJob:
    """The cancel switch of one export; safe to flip from any thread."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.stopped = False  # what the export saw the last time it looked: True = no file was kept

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def check(self) -> bool:
        self.stopped = self._stop.is_set()
        return self.stopped


def count_text(kind: str, n: int) -> str:
    one, many = NOUNS.get(kind, (kind, kind))
    return f"{n:,} {one if n == 1 else many}"


def scope_for(kind: str, search: str = "", search_as: str | None = None,
              filters: dict[str, Any] | None = None) -> ExportScope:
    """The tab's search (as the tab read it: ``phone`` or ``call_id``; guessed when not known) and
    filters as export matches.  Calls never include test calls, as in the Calls tab."""
    scope = ExportScope()
    allowed = export.MATCHABLE.get(kind, ())
    if kind == "calls":
        scope.match["test"] = [0]
    search = search.strip()
    if search:
        column = "phone" if (search_as or search_kind(search)) == "phone" else "call_id"
        words = f"{'phone number' if column == 'phone' else 'call id'} {search}"
        if column in allowed:
            scope.match[column] = phone_variants(search) if column == "phone" else [search]
            scope.applied.append(words)
        else:
            scope.not_applied.append(f"search {search}")
    for name, value in (filters or {}).items():
        if not value:
            continue
        words = f"{FILTER_NAMES.get(name, name)} {value}"
        if name in allowed:
            scope.match[name] = [value]
            scope.applied.append(words)
        else:
            scope.not_applied.append(words)
    return scope


def scope_text(kind: str, scope: ExportScope) -> str:
    """One sentence for the export dialog: what the file will hold."""
    noun = NOUNS.get(kind, (kind, kind))[1]
    if scope.not_applied:
        return (f"The export holds every {NOUNS.get(kind, (kind,))[0]} in the time range: "
                f"{', '.join(scope.not_applied)} cannot be applied to an export.")
    if scope.applied:
        return f"Only {noun} of the tab's search and filters: {', '.join(scope.applied)}."
    return f"All {noun} in the time range."


def with_format(path: Path, fmt: str) -> Path:
    """``path`` with the suffix of ``fmt`` (a known export suffix is replaced, any other kept)."""
    suffix = FORMAT_SUFFIXES[fmt]
    if path.suffix.lower() in FORMAT_SUFFIXES.values():
        return path.with_suffix(suffix)
    return path.with_name(path.name + suffix)


def default_path(directory: Path, kind: str, fmt: str, now: float) -> Path:
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d-%H%M")
    return directory / f"callsync-{kind}-{stamp}{FORMAT_SUFFIXES[fmt]}"


async def run_export(db_path: Path | StoreTarget, request: ExportRequest, job: ExportJob,
                     progress: Callable[[int, int], None] | None = None) -> ExportOutcome:
    """Run :func:`connector.export.export_file` on a thread; ``progress(rows written, total)`` is called
    on this event loop.  Never raises for a failed export: the outcome says what happened."""
    loop = asyncio.get_running_loop()

    def report(done: int, total: int) -> None:
        if progress is not None:
            loop.call_soon_threadsafe(progress, done, total)

    try:
        n = await asyncio.to_thread(
            export.export_file, db_path, request.path, request.kind, request.fmt, since=request.since,
            until=request.until, match=request.match, progress=report, cancelled=job.check)
    except export.ExportError as exc:
        return ExportOutcome(False, 0, False, f"Export failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - sqlite3 or psycopg: the store could not be read
        if not isinstance(exc, sqlite3.Error) and not faults.from_postgres(exc):
            raise
        return ExportOutcome(False, 0, False, f"Export failed: the store could not be read ({exc})")
    if job.stopped:
        return ExportOutcome(False, n, True, f"Export cancelled after {count_text(request.kind, n)}: "
                                             f"no file was written.")
    return ExportOutcome(True, n, False, f"Exported {count_text(request.kind, n)} to {request.path}")
