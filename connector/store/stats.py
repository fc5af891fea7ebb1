"""``stats_hourly``: per-hour counters (stored, deduped, rejected:<reason>, processed, http_429, ...).

Counters are added inside the writer's transactions; totals and per-hour rows are read anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.ingest import hour_of
from connector.store.db import Db, many_rows

__all__ = ["add", "bump", "by_hour", "hour_of", "rejections_by_source", "totals"]


def add(db: Db, counts: Mapping[tuple[int, str], int]) -> None:
    """Add ``(hour, name) -> n`` to the counters with one statement."""
    # In key order: writers in several processes lock the rows they add to in one order (no deadlock).
    rows = sorted((hour, name, n) for (hour, name), n in counts.items() if n)
    if rows:
        source, params = many_rows(db, (int, str, int), rows)
        db.execute(
            f"INSERT INTO stats_hourly (hour, name, n) {source} "
            "ON CONFLICT (hour, name) DO UPDATE SET n = stats_hourly.n + excluded.n",
            params,
        )


def bump(db: Db, name: str, at: float, n: int = 1) -> None:
    add(db, {(hour_of(at), name): n})


def totals(db: Db) -> dict[str, int]:
    return {name: int(n) for name, n in db.execute("SELECT name, SUM(n) FROM stats_hourly GROUP BY name")}


def by_hour(db: Db, since_hour: int) -> dict[int, dict[str, int]]:
    hours: dict[int, dict[str, int]] = {}
    for hour, name, n in db.execute(
        "SELECT hour, name, n FROM stats_hourly WHERE hour >= ? ORDER BY hour", (since_hour,)
    ):
        hours.setdefault(int(hour), {})[name] = int(n)
    return hours


def rejections_by_source(db: Db, since: float) -> dict[str, dict[str, int]]:
    """Rejected requests per configured source and reason (``source -> reason -> count``), from
    the per-hour counters ``source_rejected:<source>:<reason>`` of the hour holding ``since`` on."""
    result: dict[str, dict[str, int]] = {}
    for name, n in db.execute(
        "SELECT name, SUM(n) FROM stats_hourly WHERE hour >= ? AND name LIKE 'source\\_rejected:%' ESCAPE '\\' "
        "GROUP BY name",
        (hour_of(since),),
    ):
        _, source, reason = name.split(":", 2)
        result.setdefault(source, {})[reason] = int(n)
    return result
