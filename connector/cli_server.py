"""Server mode on the command line: ``callsync store copy`` and the checks of ``serve --workers N``."""

from __future__ import annotations

import argparse
import sys

from connector.config import Config, ConfigError
from connector.startup import DataDirLock, StartupError
from connector.store_url import HOW_TO_SET, check_url, connection_url


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def check_workers(config: Config, workers: int) -> None:
    """Several processes share one store only on PostgreSQL."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and not config.store.url:
        raise StartupError(f"--workers {workers}: several workers need the PostgreSQL store; {HOW_TO_SET}")


def store_copy_command(config: Config, args: argparse.Namespace) -> int:
    """Copy the desktop store into an empty PostgreSQL database; print counts and checksums."""
    import psycopg

    from connector.store.copy import CopyError, checksum_text, copy_store
    from connector.store.db import StoreTarget
    from connector.store.postgres import open_postgres

    url = check_url(args.to, "--to") if args.to else config.store.url
    if not url:
        raise ConfigError(f"store copy needs the PostgreSQL database to copy into: --to postgresql://user@host/db "
                          f"(password from `callsync secret set store` or CALLSYNC_STORE_PASSWORD), or {HOW_TO_SET}")
    source = config.db_path
    if not source.exists():
        raise StartupError(f"no store at {source}: nothing to copy")
    where = StoreTarget.postgres(url).describe()
    lock = DataDirLock(config.data_dir)
    lock.acquire()  # refuses while a callsync runs on this data dir; keeps one from starting meanwhile
    try:
        try:
            pg = open_postgres(connection_url(url))
        except psycopg.Error as exc:
            raise StartupError(f"cannot connect to {where}: {one_line(exc)}") from exc
        try:
            print(f"copying {source} to {where}", flush=True)
            result = copy_store(str(source), pg)
        except CopyError as exc:
            print(f"callsync: store copy: {exc}", file=sys.stderr)
            return 1
        except psycopg.Error as exc:
            print(f"callsync: store copy failed, nothing was kept: {one_line(exc)}", file=sys.stderr)
            return 1
        finally:
            pg.close()
    finally:
        lock.release()
    width = max(len(t.name) for t in result.tables)
    for table in result.tables:
        print(f"  {table.name:<{width}}  {table.rows:>10} rows  (PostgreSQL: {table.target_rows})")
    events = result.table("events")
    print(f"events checksum: SQLite {checksum_text(events.source_sum)}")
    print(f"                 PostgreSQL {checksum_text(events.target_sum)}")
    total = sum(t.rows for t in result.tables)
    print(f"copied {len(result.tables)} tables, {total} rows; every table's count and checksum match. "
          f"Start callsync with --store-url {where} (or [store] url) to use it.")
    return 0
