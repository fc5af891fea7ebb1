"""Export calls or events to CSV or JSON Lines, streamed page by page from a read-only connection.

``since`` / ``until`` filter on the time the event was received (for calls: the receipt of the
call's latest event).  Raw bodies are exported as text when they are UTF-8, else base64 with
``body_encoding = "base64"``, so nothing is lost or mangled.  ``match`` narrows the selection to
rows whose column holds one of the given values (the window passes its tab's filters and search).
"""

from __future__ import annotations

import base64
import csv
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from connector.store.db import StoreTarget, open_db

KINDS = ("calls", "events")
FORMATS = ("csv", "jsonl")
PAGE = 2000

EVENT_FIELDS = ("id", "source", "received_at", "event_type", "call_id", "status", "outcome", "phone",
                "occurred_at", "sequence", "dedupe_key", "content_type", "headers_json", "body", "body_encoding")
CALL_FIELDS = ("source", "call_id", "status", "outcome", "direction", "from_number", "to_number", "phone",
               "initiated_at", "answered_at", "ended_at", "ring_seconds", "talk_seconds", "disposition",
               "hangup_cause", "sip_code", "agent", "did", "campaign", "recording_url", "answered_by",
               "event_count", "first_received_at", "updated_at")
TIMES = {"received_at", "first_received_at", "updated_at"}
# Columns ``match`` may name, per kind.
MATCHABLE = {"events": ("source", "event_type", "outcome", "call_id", "phone"),
             "calls": ("source", "call_id", "phone", "test")}
Match = Mapping[str, Sequence[Any]]

Progress = Callable[[int, int], None]  # (rows written, rows in total)


class ExportError(ValueError):
    """The export cannot run; the message says why in one line."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _columns(conn: Any, table: str) -> set[str]:
    if getattr(conn, "dialect", "sqlite") == "postgres":
        return {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ?", (table,))}
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _plan(kind: str, since: float | None, until: float | None, match: Match | None = None) -> tuple[str, str, list[Any]]:
    """(table, where terms, arguments) for a kind, a receipt-time range and column matches."""
    table, column = ("events", "received_at") if kind == "events" else ("calls", "updated_at")
    where, args = [], []
    for name, values in (match or {}).items():
        if name not in MATCHABLE.get(kind, ()):
            raise ExportError(f"{kind} cannot be matched on {name!r}")
        values = list(values)
        where.append(f"{name} IN ({', '.join('?' for _ in values)})" if values else "FALSE")
        args += values
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return table, " AND ".join(where) or "TRUE", args


def _rows(conn: sqlite3.Connection, kind: str, since: float | None, until: float | None,
          match: Match | None = None) -> Iterator[dict[str, Any]]:
    table, where, args = _plan(kind, since, until, match)
    have = _columns(conn, table)
    fields = [f for f in (EVENT_FIELDS if kind == "events" else CALL_FIELDS) if f in have]
    order = "id" if table == "events" else "rowid"  # in the order stored (PostgreSQL's calls: an explicit rowid)
    last = -1
    while True:
        page = conn.execute(
            f"SELECT {order} AS _rowid, {', '.join(fields)} FROM {table} WHERE {where} AND {order} > ? "
            f"ORDER BY {order} LIMIT {PAGE}",
            [*args, last],
        ).fetchall()
        if not page:
            return
        for row in page:
            last = row[0]
            yield dict(zip(fields, row[1:]))


def _shape(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (_iso(v) if k in TIMES else v) for k, v in row.items()}
    if kind == "events":
        body = row.get("body")
        if isinstance(body, (bytes, memoryview)):
            raw = bytes(body)
            try:
                out["body"], out["body_encoding"] = raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                out["body"], out["body_encoding"] = base64.b64encode(raw).decode(), "base64"
        else:
            out["body_encoding"] = None if body is None else "utf-8"
    return out


def count(conn: sqlite3.Connection, kind: str, since: float | None = None, until: float | None = None,
          match: Match | None = None) -> int:
    table, where, args = _plan(kind, since, until, match)
    return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", args).fetchone()[0])


def write(conn: sqlite3.Connection, out: IO[str], kind: str, fmt: str, *, since: float | None = None,
          until: float | None = None, match: Match | None = None, progress: Progress | None = None,
          cancelled: Callable[[], bool] = lambda: False) -> int:
    """Write the selection to ``out``; returns the number of rows written."""
    if kind not in KINDS:
        raise ExportError(f"export what? choose one of {', '.join(KINDS)}, not {kind!r}")
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    total = count(conn, kind, since, until, match)
    fields = list(EVENT_FIELDS if kind == "events" else CALL_FIELDS)
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    written = 0
    for row in _rows(conn, kind, since, until, match):
        if cancelled():
            break
        shaped = _shape(kind, row)
        if writer:
            writer.writerow(shaped)
        else:
            out.write(json.dumps(shaped, ensure_ascii=False, default=str) + "\n")
        written += 1
        if progress and (written % 500 == 0 or written == total):
            progress(written, total)
    if progress and written != total:
        progress(written, total)
    return written


def export_file(store: Path | StoreTarget, path: Path, kind: str, fmt: str, *, since: float | None = None,
                until: float | None = None, match: Match | None = None, progress: Progress | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> int:
    """Export into ``path`` (written to a temporary name first, so a failed export leaves no half file).
    ``store``: the SQLite file, or a :class:`StoreTarget` (SQLite or PostgreSQL)."""
    target = store if isinstance(store, StoreTarget) else StoreTarget.sqlite(store)
    if target.path is not None and not target.path.exists():
        raise ExportError(f"no store at {target.path}: nothing to export yet")
    tmp = path.with_name(path.name + ".part")
    if target.path is not None:
        conn: Any = sqlite3.connect(f"file:{target.path}?mode=ro", uri=True, timeout=10)
    else:
        conn = open_db(target, readonly=True)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            n = write(conn, out, kind, fmt, since=since, until=until, match=match, progress=progress,
                      cancelled=cancelled)
        if cancelled():
            tmp.unlink(missing_ok=True)
            return n
        tmp.replace(path)
        return n
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:  # a bad request or an unreadable store: no half file either
        tmp.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
