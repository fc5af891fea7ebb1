"""Raw payloads kept in bounds: bodies and headers of old events are dropped in small batches.

The event rows stay (dedupe key, normalized event, call id, times), so dedupe, call records and
the event list keep working; only the raw bytes and headers go.  Freed pages are given back to the
operating system with ``PRAGMA incremental_vacuum``.  Every function runs on the writer's
connection inside its transaction (``StoreWriter.execute``).
"""

from __future__ import annotations

import sqlite3

BATCH = 500
VACUUM_PAGES = 2000  # pages handed back per step (4 KiB each: about 8 MiB)


def drop_raw_payloads(conn: sqlite3.Connection, received_before: float, limit: int = BATCH) -> int:
    """Empty the body and headers of up to ``limit`` events received before the cut; returns how many.

    The rows are deleted and written back without their payload rather than updated in place: an
    UPDATE that shrinks rows leaves their pages allocated (new rows are appended at the end of the
    table, never into the emptied space), while a DELETE merges the emptied pages and frees them.
    """
    if getattr(conn, "dialect", "sqlite") == "postgres":  # an UPDATE frees the space there (autovacuum)
        return conn.execute(
            "UPDATE events SET body = ?, headers_json = NULL WHERE id IN (SELECT id FROM events "
            "WHERE received_at < ? AND headers_json IS NOT NULL ORDER BY received_at LIMIT ?)",
            (b"", received_before, limit),
        ).rowcount
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS retention_rows AS SELECT * FROM main.events WHERE 0")
    conn.execute("DELETE FROM temp.retention_rows")
    n = conn.execute(
        "INSERT INTO temp.retention_rows SELECT * FROM main.events WHERE id IN ("
        " SELECT id FROM main.events WHERE received_at < ? AND headers_json IS NOT NULL"
        " ORDER BY received_at LIMIT ?)",
        (received_before, limit),
    ).rowcount
    if n:
        conn.execute("DELETE FROM main.events WHERE id IN (SELECT id FROM temp.retention_rows)")
        conn.execute("UPDATE temp.retention_rows SET body = X'', headers_json = NULL")
        conn.execute("INSERT INTO main.events SELECT * FROM temp.retention_rows")
        conn.execute("DELETE FROM temp.retention_rows")
    return n


def give_back_space(conn: sqlite3.Connection, pages: int = VACUUM_PAGES) -> int:
    """Free up to ``pages`` unused pages of the file (needs ``auto_vacuum = INCREMENTAL``); returns how many
    free pages were left before.  PostgreSQL's autovacuum does this by itself."""
    if getattr(conn, "dialect", "sqlite") == "postgres":
        return 0
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if free and conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        # Each step of this pragma frees one page, and Python's sqlite3 steps a statement that returns
        # no rows exactly once: one execution per page.
        for _ in range(min(free, pages)):
            conn.execute("PRAGMA incremental_vacuum(1)")
    return free


def store_bytes(path: str) -> int:
    """The store's size on disk: the database file plus its write-ahead log."""
    import os

    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(path + suffix)
        except OSError:
            pass
    return total
