"""A batch of events in two statements: one lookup, one write.

Every ``sqlite3`` call releases the GIL and then has to win it back from the
event loop, which is busy serving webhooks under load; each win can take up to
the interpreter's switch interval (5 ms).  Under load the writer's cost is
therefore counted in statements, not rows, so a batch is written with as few as
possible:

1. :func:`lookup` - one SELECT returns, as one JSON document, which dedupe keys
   are already stored, the current records of the batch's calls, the stored
   events of those calls (to re-fold them) and the highest event id.
2. :func:`write` - one INSERT into the TEMP view ``ingest`` whose INSTEAD OF
   trigger fans JSON arrays of rows out to ``events``, ``calls``, ``jobs`` and
   ``stats_hourly``.  It runs in autocommit mode, so the end of that statement
   is the commit (WAL, ``synchronous=FULL``): all of it is on disk, or none.

Rows travel as JSON text.  JSON cannot carry a NUL character through SQLite's
``json_extract`` nor bytes that are not UTF-8, so a batch containing either is
sent with every string hex-encoded (``hex = 1``) and decoded by a small SQL
function; such batches are rare (bodies are parsed JSON or form data).

Only the writer thread calls these, and the lookup and the write need no
enclosing transaction because that thread is the store's only writer of events
and calls.  Should another process write anyway, its rows make the write fail on
a UNIQUE key, and the writer stores the batch again item by item.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from connector.store import schema

EVENT_COLUMNS: dict[str, type] = {
    "id": int,
    "source": str,
    "dedupe_key": str,
    "received_at": float,
    "event_type": str,
    "call_id": str,
    "is_call": int,
    "status": str,
    "outcome": str,
    "phone": str,
    "occurred_at": str,
    "sequence": int,
    "content_type": str,
    "headers_json": str,
    "body": bytes,
    "event_json": str,
}
CALL_COLUMNS: dict[str, type] = dict(schema.CALL_COLUMNS)
JOB_COLUMNS: dict[str, type] = {"source": str, "call_id": str, "at": float}
COUNT_COLUMNS: dict[str, type] = {"hour": int, "name": str, "n": int}

_UNHEX = "callsync_unhex"


def _unhex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _column(index: int, kind: type, source: str = "value") -> str:
    """SQL reading element ``index`` of a JSON row array, decoding hex when the batch is hex."""
    raw = f"json_extract({source}, '$[{index}]')"
    if kind is bytes:
        return f"iif(NEW.hex, {_UNHEX}({raw}), CAST({raw} AS BLOB))"
    if kind is str:
        return f"iif(NEW.hex, CAST({_UNHEX}({raw}) AS TEXT), {raw})"
    return raw


def _select(columns: dict[str, type], rows: str) -> str:
    picks = ", ".join(f"{_column(i, kind)} AS {name}" for i, (name, kind) in enumerate(columns.items()))
    return f"SELECT {picks} FROM json_each(NEW.{rows})"


_CALL_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS if c not in ("source", "call_id", "first_received_at"))

_SETUP = f"""
CREATE TEMP VIEW IF NOT EXISTS ingest (hex, events, calls, jobs, counts) AS SELECT NULL, NULL, NULL, NULL, NULL;
CREATE TEMP TRIGGER IF NOT EXISTS ingest_rows INSTEAD OF INSERT ON ingest BEGIN
  INSERT INTO events ({', '.join(EVENT_COLUMNS)}) {_select(EVENT_COLUMNS, 'events')};
  INSERT INTO calls ({', '.join(CALL_COLUMNS)}) {_select(CALL_COLUMNS, 'calls')} WHERE true
    ON CONFLICT (source, call_id) DO UPDATE SET {_CALL_UPDATES};
  INSERT INTO jobs (source, call_id, status, attempts, failures, next_attempt_at, created_at, updated_at)
    SELECT source, call_id, 'pending', 0, 0, at, at, at FROM ({_select(JOB_COLUMNS, 'jobs')})
    WHERE true ON CONFLICT (source, call_id) DO NOTHING;
  INSERT INTO stats_hourly (hour, name, n) {_select(COUNT_COLUMNS, 'counts')} WHERE true
    ON CONFLICT (hour, name) DO UPDATE SET n = n + excluded.n;
END;
"""


def _key(index: int, source: str) -> str:
    raw = f"json_extract({source}.value, '$[{index}]')"
    return f"iif(?3, CAST({_UNHEX}({raw}) AS TEXT), {raw})"


_CALL_JSON = ", ".join(f"'{c}', t.{c}" for c in CALL_COLUMNS)
_LOOKUP = f"""
SELECT json_object(
  'max_id', (SELECT max(id) FROM events),
  'stored', (SELECT json_group_array(json_array(t.source, t.dedupe_key)) FROM json_each(?1) AS k
             JOIN events AS t ON t.source = {_key(0, 'k')} AND t.dedupe_key = {_key(1, 'k')}),
  'calls', (SELECT json_group_array(json_object({_CALL_JSON})) FROM json_each(?2) AS k
            JOIN calls AS t ON t.source = {_key(0, 'k')} AND t.call_id = {_key(1, 'k')}),
  'history', (SELECT json_group_array(json_array(t.source, t.call_id, t.event_json)) FROM json_each(?2) AS k
              JOIN events AS t ON t.source = {_key(0, 'k')} AND t.call_id = {_key(1, 'k')})
)
"""


def prepare(conn: sqlite3.Connection) -> None:
    """Create the connection's TEMP view and trigger (once per connection)."""
    conn.create_function(_UNHEX, 1, _unhex, deterministic=True)
    conn.executescript(_SETUP)


class _NeedsHex(Exception):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _NeedsHex from None
    if isinstance(value, str) and "\x00" in value:
        raise _NeedsHex
    return value


def _hexed(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return value.encode("utf-8").hex()
    return value


def _encode(tables: Sequence[Iterable[Sequence[Any]]]) -> tuple[int, list[str]]:
    """JSON text for each table's rows: plain when every value survives JSON, else all hex."""
    for hex_flag, convert in ((0, _plain), (1, _hexed)):
        try:
            return hex_flag, [json.dumps([[convert(v) for v in row] for row in rows], ensure_ascii=False)
                              for rows in tables]
        except _NeedsHex:
            continue
    raise AssertionError("unreachable")


def lookup(
    conn: sqlite3.Connection, keys: list[tuple[str, str]], calls: list[tuple[str, str]]
) -> dict[str, Any]:
    """Stored state for a batch: ``{"max_id", "stored": [[source, dedupe_key]...],
    "calls": [record dict...], "history": [[source, call_id, event_json]...]}``."""
    hex_flag, (keys_json, calls_json) = _encode([keys, calls])
    row = conn.execute(_LOOKUP, (keys_json, calls_json, hex_flag)).fetchone()
    return json.loads(row[0])


def write(
    conn: sqlite3.Connection,
    events: list[Sequence[Any]],
    calls: list[Sequence[Any]],
    jobs: list[Sequence[Any]],
    counts: list[Sequence[Any]],
) -> None:
    """Insert rows (in EVENT_COLUMNS / CALL_COLUMNS / JOB_COLUMNS / COUNT_COLUMNS order)
    with one statement, committed when it returns."""
    if conn.in_transaction:
        raise RuntimeError("ingest.write commits by itself; it must not run inside a transaction")
    hex_flag, texts = _encode([events, calls, jobs, counts])
    conn.execute("INSERT INTO ingest (hex, events, calls, jobs, counts) VALUES (?, ?, ?, ?, ?)", (hex_flag, *texts))
