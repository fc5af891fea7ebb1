"""The ``calls`` table: one row per call, its record as folded from its events (``connector.calls``).

The writer loads the records of a batch's calls and upserts them with one statement each way;
the admin API and the window page through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.ingest import CallWrite, Key, KnownCall
from connector.model import CallRecord
from connector.store import schema
from connector.store.db import Db, dicts, many_rows, marks, one_dict
from connector.store.events import PAGE_MAX, of_call, phone_variants

_KEY = ("source", "call_id")


def columns() -> tuple[str, ...]:
    """The calls table's columns: the record's fields, its phone, first and last receipt."""
    return tuple(schema.CALL_COLUMNS)


def row(call: CallWrite) -> tuple[Any, ...]:
    values = call.record.to_dict() | {"phone": call.record.phone, "first_received_at": call.first_received_at,
                                      "updated_at": call.updated_at}
    return tuple(values.get(c) for c in columns())


def load(db: Db, calls: Sequence[Key]) -> dict[Key, KnownCall]:
    """The stored records of these calls (``(source, call_id)``); events are not loaded here."""
    if not calls:
        return {}
    keys, params = many_rows(db, (str, str), calls)
    found = dicts(db.execute(
        f"WITH k (source, call_id) AS ({keys}) "
        "SELECT c.* FROM k JOIN calls c ON c.source = k.source AND c.call_id = k.call_id",
        params,
    ))
    return {(r["source"], r["call_id"]): KnownCall(CallRecord.from_dict(r), r["first_received_at"]) for r in found}


def upsert(db: Db, calls: Sequence[CallWrite]) -> None:
    """Write these records with one statement (a call's first receipt time is never changed)."""
    if not calls:
        return
    names = columns()
    updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in (*_KEY, "first_received_at"))
    source, params = many_rows(db, [schema.CALL_COLUMNS[n] for n in names], [row(call) for call in calls])
    db.execute(
        f"INSERT INTO calls ({', '.join(names)}) {source} ON CONFLICT (source, call_id) DO UPDATE SET {updates}",
        params,
    )


# -- reads -----------------------------------------------------------------------------


def get_call(db: Db, source: str, call_id: str) -> dict[str, Any] | None:
    """A call's row and its events."""
    call = one_dict(db.execute("SELECT * FROM calls WHERE source = ? AND call_id = ?", (source, call_id)))
    if call is not None:
        call["events"] = of_call(db, source, call_id)
    return call


def list_calls(
    db: Db,
    *,
    phone: str | None = None,
    call_id: str | None = None,
    before: float | None = None,
    before_rowid: int | None = None,
    limit: int = 50,
    tests: bool = True,
) -> list[dict[str, Any]]:
    """Calls most recently updated first, keyset-paged by (updated_at, rowid) so equal times are not
    skipped; optionally those of one phone number (any written form) or one call id (in any source),
    without test calls when ``tests`` is false."""
    limit = max(1, min(int(limit), PAGE_MAX))
    where: list[str] = [] if tests else ["test = 0"]
    args: list[Any] = []
    prefix = ""
    if phone:
        forms = phone_variants(phone)
        where.append(f"phone IN ({marks(len(forms))})")
        args += forms
    if call_id:
        # source IN (...) AND call_id = ? walks the primary key (source, call_id) once per source.
        prefix = ("WITH RECURSIVE s(v) AS (SELECT MIN(source) FROM calls UNION ALL "
                  "SELECT (SELECT MIN(source) FROM calls WHERE source > s.v) FROM s WHERE s.v IS NOT NULL) ")
        where.append("source IN (SELECT v FROM s) AND call_id = ?")
        args.append(call_id)
    if before is not None and before_rowid is not None:
        where.append("(updated_at, rowid) < (?, ?)")
        args += [before, before_rowid]
    elif before is not None:
        where.append("updated_at < ?")
        args.append(before)
    sql = f"{prefix}SELECT rowid AS _rowid, * FROM calls"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return dicts(db.execute(sql + " ORDER BY updated_at DESC, rowid DESC LIMIT ?", [*args, limit]))
