"""Read side of the store: its own connections (one per reader thread), never the writer's.

Every query is a plain function of a connection so the admin API, the window's
facade and the CLI share them; :class:`StoreReader` runs them off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from connector.store import schema

T = TypeVar("T")
PAGE_MAX = 500
_DIGITS = re.compile(r"\D")

EVENT_LIST_COLUMNS = (
    "id, source, dedupe_key, received_at, event_type, call_id, is_call, status, outcome, phone, occurred_at"
)


class StoreReader:
    def __init__(self, path: str, *, threads: int = 2) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store-reader")
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = schema.connect(self.path, readonly=True)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def query(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a query function synchronously in the calling thread."""
        return fn(self.connection(), *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.query(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


def phone_variants(text: str) -> list[str]:
    """Forms a number may be stored in: as typed, digits only, +digits, national 10 digits."""
    digits = _DIGITS.sub("", text)
    forms = {text.strip(), digits, "+" + digits}
    if len(digits) == 11 and digits.startswith("1"):
        forms |= {digits[1:]}
    if len(digits) == 10:
        forms |= {"+1" + digits, "1" + digits}
    return sorted(f for f in forms if f and f != "+")


def list_events(
    conn: sqlite3.Connection,
    *,
    call_id: str | None = None,
    phone: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
    outcome: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Newest first, keyset-paged by id: pass ``next_before_id`` back to get the next page."""
    limit = max(1, min(int(limit), PAGE_MAX))
    where, args = [], []
    for column, value in (("call_id", call_id), ("event_type", event_type), ("source", source), ("outcome", outcome)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if phone:
        forms = phone_variants(phone)
        where.append(f"phone IN ({','.join('?' for _ in forms)})")
        args += forms
    if before_id is not None:
        where.append("id < ?")
        args.append(int(before_id))
    sql = f"SELECT {EVENT_LIST_COLUMNS} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = [dict(r) for r in conn.execute(sql, [*args, limit + 1])]
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": rows, "next_before_id": rows[-1]["id"] if more else None}


def get_event(conn: sqlite3.Connection, event_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    event = dict(row)
    body: bytes = event.pop("body")
    event["body"] = body.decode("utf-8", errors="replace")
    # Retention empties the body and headers of old events; the row and its normalized event stay.
    event["payload_dropped"] = event["headers_json"] is None and not body
    event["headers"] = json.loads(event.pop("headers_json") or "{}")
    event["event"] = json.loads(event.pop("event_json") or "{}")
    return event


def get_call(conn: sqlite3.Connection, source: str, call_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM calls WHERE source = ? AND call_id = ?", (source, call_id)).fetchone()
    if row is None:
        return None
    call = dict(row)
    call["events"] = [
        dict(r)
        for r in conn.execute(
            f"SELECT {EVENT_LIST_COLUMNS} FROM events WHERE source = ? AND call_id = ? ORDER BY id",
            (source, call_id),
        )
    ]
    return call


def list_calls(
    conn: sqlite3.Connection, *, before: float | None = None, before_rowid: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Most recently updated first, keyset-paged by (updated_at, rowid) so equal times are not skipped."""
    limit = max(1, min(int(limit), PAGE_MAX))
    if before is None:
        rows = conn.execute("SELECT rowid AS _rowid, * FROM calls ORDER BY updated_at DESC, rowid DESC LIMIT ?", (limit,))
    elif before_rowid is None:
        rows = conn.execute(
            "SELECT rowid AS _rowid, * FROM calls WHERE updated_at < ? ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (before, limit),
        )
    else:
        rows = conn.execute(
            "SELECT rowid AS _rowid, * FROM calls WHERE (updated_at, rowid) < (?, ?) "
            "ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (before, before_rowid, limit),
        )
    return [dict(r) for r in rows]


def counter_totals(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: n for name, n in conn.execute("SELECT name, SUM(n) FROM stats_hourly GROUP BY name")}


def counters_by_hour(conn: sqlite3.Connection, since_hour: int) -> dict[int, dict[str, int]]:
    hours: dict[int, dict[str, int]] = {}
    for hour, name, n in conn.execute(
        "SELECT hour, name, n FROM stats_hourly WHERE hour >= ? ORDER BY hour", (since_hour,)
    ):
        hours.setdefault(hour, {})[name] = n
    return hours


def rejections_by_source(conn: sqlite3.Connection, since: float) -> dict[str, dict[str, int]]:
    """Rejected requests per configured source and reason (``source -> reason -> count``), from
    the per-hour counters ``source_rejected:<source>:<reason>`` of the hour holding ``since`` on."""
    result: dict[str, dict[str, int]] = {}
    for name, n in conn.execute(
        "SELECT name, SUM(n) FROM stats_hourly WHERE hour >= ? AND name LIKE 'source\\_rejected:%' ESCAPE '\\' "
        "GROUP BY name",
        (int(since // 3600 * 3600),),
    ):
        _, source, reason = name.split(":", 2)
        result.setdefault(source, {})[reason] = n
    return result
