"""``callsync alerts``: the automations' alerts, newest first (works while callsync runs)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from connector.config import Config, ConfigError


def since_value(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since must be ISO 8601, e.g. 2026-06-04T09:00:00Z; got {text!r}") from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def alerts_command(config: Config, args: argparse.Namespace) -> int:
    from connector.automations.admin_routes import shown
    from connector.store import alerts
    from connector.store.reader import StoreReader
    from connector.store.writer import open_write_db

    since = since_value(args.since)
    if not 1 <= args.limit <= 1000:
        raise ConfigError("--limit must be between 1 and 1000")
    rows: list[dict] = []
    target = config.store_target
    if target.url or config.db_path.exists():  # no store yet: no alerts, and nothing is created
        open_write_db(target).close()  # brought up to date first
        reader = StoreReader(target)
        try:
            rows = reader.query(alerts.list_alerts, since, args.limit, args.recipe)
        finally:
            reader.close()
    if args.json:
        print(json.dumps([shown(r) for r in rows], indent=2, default=str))
        return 0
    if not rows:
        print("no alerts" + (" since " + args.since if args.since else ""))
        return 0
    for row in rows:
        when = datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        seen = "  " if row["acknowledged_at"] else "! "
        print(f"{seen}{when}  {row['recipe']:<9} {row['message']}\n    {row['id']}  events "
              f"{', '.join(str(i) for i in row['evidence'].get('event_ids', [])[:5]) or '-'}")
    return 0
