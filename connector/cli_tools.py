"""The command line's store and secret tools: ``secret``, ``check-crm``, ``replay``, ``dead``, ``export``.

Each prints what a person needs in a few lines and returns the exit code; configuration and
start-up problems are raised for :func:`connector.cli.main` to print as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from connector.config import Config
from connector.startup import StartupError


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe_config_file(config: Config) -> str:
    path = config.config_path
    return f"config: {path}" if path.exists() else f"config: {path} (no such file: defaults)"


def required_secrets(config: Config) -> list[tuple[str, bool]]:
    """``(keyring user, required)`` for every secret this configuration uses."""
    from connector import secrets
    from connector.sync.admin_routes import ADMIN_TOKEN_USER
    from connector.sync.worker import TOKEN_USER

    users: list[tuple[str, bool]] = []
    for source in config.sources.values():  # public-key checks (Telnyx, GoHighLevel) need none
        for user in dict.fromkeys(secrets.secret_users(source).values()):
            users += [(user, True), (secrets.previous_user(user), False)]
    if config.ghl.configured:
        users.append((TOKEN_USER, True))
    # A reconciling Twilio source's API token (else its own secret); the tunnel's ngrok authtoken.
    users += [(f"twilio:{s.name}", False) for s in config.sources.values() if s.kind == "twilio" and s.reconcile]
    if config.tunnel.active and config.tunnel.provider == "ngrok":
        users.append(("tunnel:ngrok", True))
    users += [(action.secret_user, True) for action in config.automations.actions.values() if action.uses_secret]
    if config.automations.alerts.webhook_url:
        users.append((config.automations.alerts.WEBHOOK_SECRET_USER, True))
    users.append((ADMIN_TOKEN_USER, True))
    return users


def secret_status(config: Config) -> int:
    from connector import secrets

    _, keyring_message = secrets.keyring_usable()
    print(describe_config_file(config))
    print(f"keyring: {keyring_message}")
    missing = []
    for user, required in required_secrets(config):
        _, where = secrets.lookup(user)
        if where in ("environment", "keyring"):
            state = f"{where} ({secrets.env_name(user)})" if where == "environment" else where
        else:
            state = f"{where}: set {secrets.env_name(user)} or run `callsync secret set {user}`"
            if required:
                missing.append(user)
        note = "" if required else ("  [optional: else the source's secret]" if user.startswith("twilio:")
                                    else "  [optional: only while rotating]")
        print(f"  {user:<32} {state}{note}")
    if missing:
        print(f"{len(missing)} required secret(s) missing: {', '.join(missing)}")
        return 1
    print("all required secrets are present")
    return 0


def secret_command(args: argparse.Namespace, load: Callable[[], Config]) -> int:
    import keyring.errors

    from connector import secrets

    if args.action == "status":
        return secret_status(load())
    if not args.user:
        print(f"callsync: name the secret, e.g. `callsync secret {args.action} source:dialer`", file=sys.stderr)
        return 2
    usable, message = secrets.keyring_usable()
    try:
        if args.action == "delete":
            secrets.delete_secret(args.user)
            print(f"removed {args.user}")
            return 0
        value = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass(f"{args.user}: ")
        if not value:
            print("callsync: empty secret, nothing stored", file=sys.stderr)
            return 2
        secrets.set_secret(args.user, value)
        print(f"stored {args.user} in the OS keyring")
        return 0
    except keyring.errors.KeyringError as exc:
        hint = message if not usable else f"the OS keyring refused it ({exc})"
        print(f"callsync: {hint} Set {secrets.env_name(args.user)} in the environment instead.", file=sys.stderr)
        return 1


def check_crm_command(config: Config) -> int:
    from connector.secrets import get_secret
    from connector.sync.worker import TOKEN_USER, check_crm

    print(describe_config_file(config))
    result = asyncio.run(check_crm(config.ghl, get_secret(TOKEN_USER)))
    verdict, status = result["verdict"], result.get("status")
    if status is not None and not verdict.startswith("GoHighLevel answered"):
        verdict = f"GoHighLevel answered {status}: {verdict}"
    print(("OK: " if result["ok"] else "FAILED: ") + verdict)
    return 0 if result["ok"] else 1


def _store_path(config: Config) -> Path | None:
    path = config.db_path
    return path if path.exists() else None


def replay_command(config: Config, args: argparse.Namespace) -> int:
    import time

    from aiohttp import web

    from connector.store import jobs
    from connector.store.writer import StoreWriter
    from connector.sync.admin_routes import replay_selection

    body = {"dead": args.dead, "call": args.call, "since": args.since, "until": args.until}
    try:
        selection = replay_selection(body)
    except web.HTTPBadRequest as exc:
        print(f"callsync: {exc.text}", file=sys.stderr)
        return 2
    target = config.store_target
    if target.path is not None and not target.path.exists():
        raise StartupError(f"no store at {config.db_path}: nothing to replay (start callsync once first)")
    # A second writer process is safe (BEGIN IMMEDIATE + busy_timeout); a running worker
    # picks the re-queued jobs up within seconds.
    writer = StoreWriter(target)
    writer.start()
    try:
        count = writer.execute_sync(lambda db: jobs.replay(db, time.time(), **selection))
    finally:
        writer.stop()
    print(f"re-queued {count} job(s)")
    return 0


def dead_command(config: Config, args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    from connector.store.jobs import list_dead
    from connector.store.reader import StoreReader
    from connector.store.writer import open_write_db

    rows: list[dict] = []
    target = config.store_target
    if target.url or _store_path(config) is not None:  # no store yet: no dead letters, and nothing is created
        open_write_db(target).close()  # brought up to date first
        reader = StoreReader(target)
        try:
            rows = reader.query(list_dead)
        finally:
            reader.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no dead letters")
        return 0
    for row in rows:
        when = datetime.fromtimestamp(row["updated_at"]).strftime("%Y-%m-%d %H:%M")
        print(f"#{row['id']:<6} {when}  {row['source']}/{row['call_id']}  {row['phone'] or '-'}  "
              f"{row['outcome'] or '-'}  tries={row['attempts']}\n        {row['last_error']}")
    return 0


def export_command(config: Config, args: argparse.Namespace) -> int:
    from connector import export
    from connector.sync.admin_routes import parse_time

    try:
        since, until = parse_time(args.since, "since"), parse_time(args.until, "until")
        n = export.export_file(config.store_target, args.out, args.what, args.format, since=since, until=until)
    except Exception as exc:  # noqa: BLE001 - ExportError, or aiohttp's HTTPBadRequest for a bad time
        print(f"callsync: export: {one_line(getattr(exc, 'text', None) or exc)}", file=sys.stderr)
        return 2
    print(f"wrote {n} {args.what} to {args.out}")
    return 0


