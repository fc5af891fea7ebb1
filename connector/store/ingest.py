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
from collections.abc import Sequence
from typing import Any

from connector.store import schema

# id and outcome first: they are known on the writer thread, the rest where the event is queued.
EVENT_COLUMNS: dict[str, type] = {"id": int, "outcome": str} | {
    name: kind for name, kind in schema.EVENT_COLUMNS.items() if name not in ("id", "outcome")
}
CALL_COLUMNS: dict[str, type] = dict(schema.CALL_COLUMNS)
JOB_COLUMNS: dict[str, type] = {"source": str, "call_id": str, "at": float}
COUNT_COLUMNS: dict[str, type] = {"hour": int, "name": str, "n": int}

_UNHEX = "callsync_unhex"


def _unhex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _element(json_text: str, index: int) -> str:
    return f"json_extract({json_text}, '$[{index}]')"


def _decoded(raw: str, kind: type, hex_flag: str) -> str:
    """SQL for the value ``raw`` (a json_extract) as a ``kind`` column, decoding hex when
    ``hex_flag`` (an SQL expression) is true."""
    if kind is bytes:
        return f"iif({hex_flag}, {_UNHEX}({raw}), CAST({raw} AS BLOB))"
    if kind is str:
        return f"iif({hex_flag}, CAST({_UNHEX}({raw}) AS TEXT), {raw})"
    return raw


def _select(columns: dict[str, type], rows: str) -> str:
    picks = ", ".join(f"{_decoded(_element('value', i), kind, 'NEW.hex')} AS {name}"
                      for i, (name, kind) in enumerate(columns.items()))
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
    return _decoded(_element(f"{source}.value", index), str, "?3")


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


def plain_json(values: Sequence[Any]) -> str | None:
    """A row as JSON text SQLite reads back exactly (bytes as UTF-8 text), or None when it
    cannot be: bytes that are not UTF-8, or a NUL character anywhere."""
    if any(isinstance(v, bytes) for v in values):
        try:
            values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
        except UnicodeDecodeError:
            return None
    text = json.dumps(values, ensure_ascii=False)
    return None if "\\u0000" in text else text


class Row:
    """One row for :func:`write`: its values, and its plain JSON text when it has one."""

    __slots__ = ("values", "text")

    def __init__(self, values: Sequence[Any], text: str | None = None) -> None:
        self.values = values
        self.text = plain_json(values) if text is None else text


def _hexed(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return value.encode("utf-8").hex()
    return value


def _encode(tables: Sequence[Sequence[Row]]) -> tuple[int, list[str]]:
    """JSON text for each table: plain when every row has plain text, else every string hex."""
    if all(row.text is not None for rows in tables for row in rows):
        return 0, ["[" + ",".join(row.text for row in rows) + "]" for rows in tables]  # type: ignore[misc]
    return 1, [json.dumps([[_hexed(v) for v in row.values] for row in rows]) for rows in tables]


def lookup(
    conn: sqlite3.Connection, keys: list[tuple[str, str]], calls: list[tuple[str, str]]
) -> dict[str, Any]:
    """Stored state for a batch: ``{"max_id", "stored": [[source, dedupe_key]...],
    "calls": [record dict...], "history": [[source, call_id, event_json]...]}``."""
    hex_flag, (keys_json, calls_json) = _encode([[Row(key) for key in keys], [Row(call) for call in calls]])
    row = conn.execute(_LOOKUP, (keys_json, calls_json, hex_flag)).fetchone()
    return json.loads(row[0])


def write(conn: sqlite3.Connection, events: Sequence[Row], calls: Sequence[Row], jobs: Sequence[Row],
          counts: Sequence[Row]) -> None:
    """Insert rows (values in EVENT_COLUMNS / CALL_COLUMNS / JOB_COLUMNS / COUNT_COLUMNS order)
    with one statement, committed when it returns."""
    if conn.in_transaction:
        raise RuntimeError("ingest.write commits by itself; it must not run inside a transaction")
    hex_flag, texts = _encode([events, calls, jobs, counts])
    conn.execute("INSERT INTO ingest (hex, events, calls, jobs, counts) VALUES (?, ?, ?, ?, ?)", (hex_flag, *texts))
