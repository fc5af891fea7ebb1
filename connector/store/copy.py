"""``callsync store copy``: move a desktop store (the SQLite file) into an empty PostgreSQL database.

Every table of the store is copied as it is - events, calls, jobs, their steps and delivery log,
dead letters (jobs with status ``dead``), the contact cache, callback counters, the hourly counters
and the worker's state - with its ids, so the copy continues where the desktop stopped.  The schema
is created by the PostgreSQL migrations first; the copy itself is one transaction, checked before
it commits: the row count of every table, and a checksum of every table's rows (the sum of the
SHA-256 of each row's values, so the order rows come back in does not matter) computed on both
sides.  A difference rolls everything back.

The SQLite side is read in one read transaction, so the copy is a consistent snapshot.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connector.store import pg_schema
from connector.store.postgres import PgDb

CHUNK = 5000
MOD = 1 << 256
# SQLite's implicit row number, kept where PostgreSQL has an explicit column for it.
ROWID_COLUMNS = {"calls": "rowid"}


class CopyError(Exception):
    """The copy cannot be made or did not verify; the message says why (one line)."""


@dataclass
class TableCopy:
    name: str
    rows: int = 0
    source_sum: int = 0
    target_sum: int = 0
    target_rows: int = 0

    @property
    def verified(self) -> bool:
        return self.rows == self.target_rows and self.source_sum == self.target_sum


@dataclass
class CopyResult:
    tables: list[TableCopy] = field(default_factory=list)

    def table(self, name: str) -> TableCopy:
        return next(t for t in self.tables if t.name == name)

    @property
    def verified(self) -> bool:
        return all(t.verified for t in self.tables)


def checksum_text(total: int) -> str:
    return f"sha256-sum:{total:064x}"


def _coercer(kind: str) -> Callable[[Any], Any]:
    """A value as the PostgreSQL column of type ``kind`` holds it (SQLite keeps whatever it was given)."""
    if kind == "bytea":
        return lambda v: v.encode("utf-8") if isinstance(v, str) else v
    if kind in ("double precision", "real"):
        return lambda v: float(v) if isinstance(v, int) else v
    if kind in ("bigint", "integer", "smallint"):
        return lambda v: int(v) if isinstance(v, float) and v.is_integer() else v
    if kind == "text":
        return lambda v: v.decode("utf-8") if isinstance(v, bytes) else v
    return lambda v: v


def _row_hash(values: tuple[Any, ...]) -> int:
    h = hashlib.sha256()
    for v in values:
        if v is None:
            h.update(b"N;")
        elif isinstance(v, bytes):
            h.update(b"B" + v.hex().encode() + b";")
        elif isinstance(v, float):
            h.update(b"F" + repr(v).encode() + b";")
        elif isinstance(v, int):
            h.update(b"I" + str(v).encode() + b";")
        else:
            h.update(b"T" + str(v).encode("utf-8", "surrogatepass").hex().encode() + b";")
    return int.from_bytes(h.digest(), "big")


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _pg_columns(pg: PgDb, table: str) -> dict[str, str]:
    return dict(pg.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position", (table,)).fetchall())


def check_empty(pg: PgDb, tables: list[str]) -> None:
    """Refuse a database that holds rows of any store table (schema without rows is fine)."""
    full = []
    for table in tables:
        if pg.execute("SELECT to_regclass(?) IS NOT NULL", (table,)).fetchone()[0]:
            if pg.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
                full.append(table)
    if full:
        raise CopyError(f"the PostgreSQL database is not empty ({', '.join(full)} hold rows): "
                        "store copy moves a store into an empty database only")


def _chunks(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        rows = cursor.fetchmany(CHUNK)
        if not rows:
            return
        yield rows


def _copy_table(lite: sqlite3.Connection, pg: PgDb, table: str) -> TableCopy:
    target = _pg_columns(pg, table)
    if not target:
        raise CopyError(f"table {table} has no counterpart in PostgreSQL (is this callsync older than the store?)")
    names = [r[1] for r in lite.execute(f"PRAGMA table_info({table})")]
    missing = [n for n in names if n not in target]
    if missing:
        raise CopyError(f"PostgreSQL's {table} has no column {', '.join(missing)}")
    select = [*names]
    if table in ROWID_COLUMNS:
        select.append("rowid")
        names = [*names, ROWID_COLUMNS[table]]
    coerce = [_coercer(target[n]) for n in names]
    result = TableCopy(table)
    column_list = ", ".join(f'"{n}"' for n in names)
    with pg.raw.cursor() as cur, cur.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
        for rows in _chunks(lite.execute(f"SELECT {', '.join(select)} FROM {table}")):
            for row in rows:
                values = tuple(c(v) for c, v in zip(coerce, row))
                copy.write_row(values)
                result.rows += 1
                result.source_sum = (result.source_sum + _row_hash(values)) % MOD
    # The copy read back: a server-side cursor streams it without holding the table in memory.
    with pg.raw.cursor(name=f"verify_{table}") as cur:
        cur.itersize = CHUNK
        cur.execute(f"SELECT {column_list} FROM {table}")
        for row in cur:
            result.target_rows += 1
            result.target_sum = (result.target_sum + _row_hash(tuple(row))) % MOD
    return result


def _reset_identities(pg: PgDb) -> None:
    """Ids continue after the copied ones."""
    rows = pg.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND is_identity = 'YES'").fetchall()
    for table, column in rows:
        pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                   f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)")


def copy_store(sqlite_path: str, pg: PgDb, progress: Callable[[str], None] = lambda _: None) -> CopyResult:
    """Copy the store at ``sqlite_path`` into the database of ``pg`` (empty of store rows); committed
    only when every table verified.  Raises :class:`CopyError`."""
    from connector.store import schema

    lite = schema.connect(sqlite_path)
    try:
        schema.migrate(lite)  # the desktop store at this release's schema, like PostgreSQL's below
        version = lite.execute("PRAGMA user_version").fetchone()[0]
        if version != len(pg_schema.MIGRATIONS):
            raise CopyError(f"the store's schema is version {version}, PostgreSQL's would be "
                            f"{len(pg_schema.MIGRATIONS)}: use the callsync that wrote it")
        tables = _sqlite_tables(lite)
        check_empty(pg, tables)
        pg_schema.migrate(pg)
        result = CopyResult()
        lite.execute("BEGIN")  # one snapshot of the whole store
        try:
            with pg.transaction():
                pg.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
                check_empty(pg, tables)  # nothing arrived since the first look
                for table in tables:
                    progress(table)
                    result.tables.append(_copy_table(lite, pg, table))
                _reset_identities(pg)
                if not result.verified:
                    bad = ", ".join(t.name for t in result.tables if not t.verified)
                    raise CopyError(f"the copy did not verify ({bad} differ); nothing was kept")
        finally:
            lite.execute("ROLLBACK")
        return result
    finally:
        lite.close()
