"""``callsync`` command line: the window by default, ``serve`` for headless servers."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path

from connector.config import Config, ConfigError, apply_overrides, default_data_dir, load_config

log = logging.getLogger("callsync")


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="where config.toml and the store live")
    p.add_argument("--host", default=None, help="hooks listener address (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="hooks listener port (default 8787)")
    p.add_argument("--admin-port", type=int, default=None, help="loopback admin API port (default 8788)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callsync", description="Signed call-event webhooks into your CRM.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")
    _add_server_options(sub.add_parser("serve", help="run receiver and sync worker without a window"))
    _add_server_options(sub.add_parser("gui", help="open the status window (default)"))

    check = sub.add_parser("check-crm", help="verify the GoHighLevel token and location")
    check.add_argument("--data-dir", type=Path, default=None)

    replay = sub.add_parser("replay", help="re-queue CRM work")
    replay.add_argument("--data-dir", type=Path, default=None)
    what = replay.add_mutually_exclusive_group(required=True)
    what.add_argument("--dead", action="store_true", help="every dead letter")
    what.add_argument("--call", metavar="SOURCE/CALL_ID", help="one call")
    what.add_argument("--since", metavar="ISO8601", help="calls finished since this time")
    replay.add_argument("--until", metavar="ISO8601", help="with --since: up to this time")

    dead = sub.add_parser("dead", help="list dead letters with their last error")
    dead.add_argument("--data-dir", type=Path, default=None)
    dead.add_argument("--json", action="store_true", help="machine-readable output")

    secret = sub.add_parser("secret", help="store or remove a secret in the OS keyring")
    secret.add_argument("action", choices=("set", "delete", "status"))
    secret.add_argument("user", nargs="?", help="e.g. source:dialer, source:dialer:previous, crm:ghl")
    secret.add_argument("--data-dir", type=Path, default=None)
    return parser


def load(args: argparse.Namespace) -> Config:
    config = load_config(args.data_dir or default_data_dir())
    return apply_overrides(
        config,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        admin_port=getattr(args, "admin_port", None),
    )


async def serve(config: Config) -> int:
    from connector.app import Service

    service = Service(config)
    await service.start()
    print(f"callsync: data dir {config.data_dir}", flush=True)
    print(f"callsync: hooks on {service.hooks_url}/hooks/<source>  admin on {service.admin_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()
    print("callsync: stopping", flush=True)
    await service.stop()
    return 0


def secret_command(args: argparse.Namespace) -> int:
    import keyring.errors

    from connector import secrets

    usable, message = secrets.keyring_usable()
    if args.action == "status":
        print(message)
        return 0 if usable else 1
    if not args.user:
        print("callsync: name the secret, e.g. `callsync secret set source:dialer`", file=sys.stderr)
        return 2
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
        print(f"callsync: {message}\n({exc})", file=sys.stderr)
        print(f"Set {secrets.env_name(args.user)} in the environment instead.", file=sys.stderr)
        return 1


def check_crm_command(config: Config) -> int:
    from connector.secrets import get_secret
    from connector.sync.settings import parse_ghl
    from connector.sync.worker import TOKEN_USER, check_crm

    result = asyncio.run(check_crm(parse_ghl(config.raw), get_secret(TOKEN_USER)))
    print(("OK: " if result["ok"] else "FAILED: ") + result["verdict"])
    return 0 if result["ok"] else 1


def replay_command(config: Config, args: argparse.Namespace) -> int:
    from aiohttp import web

    from connector.store.writer import StoreWriter
    from connector.sync import outbox
    from connector.sync.admin_routes import replay_selection

    body = {"dead": args.dead, "call": args.call, "since": args.since, "until": args.until}
    try:
        selection = replay_selection(body)
    except web.HTTPBadRequest as exc:
        print(f"callsync: {exc.text}", file=sys.stderr)
        return 2
    # A second writer process is safe (BEGIN IMMEDIATE + busy_timeout); a running worker
    # picks the re-queued jobs up within seconds.
    writer = StoreWriter(str(config.db_path))
    writer.start()
    try:
        import time

        count = writer.execute_sync(lambda c: outbox.replay(c, time.time(), **selection))
    finally:
        writer.stop()
    print(f"re-queued {count} job(s)")
    return 0


def dead_command(config: Config, args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    from connector.store.reader import StoreReader
    from connector.store.schema import prepare
    from connector.sync.queries import list_dead

    prepare(str(config.db_path))
    reader = StoreReader(str(config.db_path))
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = args.command or "gui"
    if command == "secret":
        return secret_command(args)
    if command == "gui" and args.command is None:
        args = build_parser().parse_args(["gui", *(argv if argv is not None else sys.argv[1:])])
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"callsync: configuration error: {exc}", file=sys.stderr)
        return 2
    if command == "check-crm":
        return check_crm_command(config)
    if command == "replay":
        return replay_command(config, args)
    if command == "dead":
        return dead_command(config, args)
    try:
        if command == "serve":
            return asyncio.run(serve(config))
        from gui.main import run_gui

        return run_gui(config)
    except OSError as exc:
        print(f"callsync: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
