"""``callsync`` command line: the window by default, ``serve`` for headless servers.

Every configuration and start-up problem ends as one line on stderr and exit code 2
(:class:`~connector.config.ConfigError`, :class:`~connector.startup.StartupError`), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sqlite3
import sys
from pathlib import Path

from connector.config import Config, ConfigError, apply_overrides, default_data_dir, load_config
from connector.startup import StartupError

log = logging.getLogger("callsync")

SERVER_COMMANDS = ("serve", "gui")
SECRET_ACTIONS = ("set", "delete", "status")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0-65535 (0 picks a free one), got {port}")
    return port


def _common_options(p: argparse.ArgumentParser, *, server: bool, default: object) -> None:
    """Options accepted before the subcommand (``default=None``) and after it (``default=SUPPRESS``,
    so an option given only before the subcommand is not reset by the subcommand's parser)."""
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    p.add_argument("--data-dir", type=Path, default=default, metavar="DIR",
                   help="where config.toml and the store live (default: the user data dir, "
                        f"{default_data_dir()})")
    if server:
        p.add_argument("--host", default=default,
                       help="hooks listener address (overrides [server] host; default 127.0.0.1)")
        p.add_argument("--port", type=_port, default=default,
                       help="hooks listener port (overrides [server] port; default 8787, 0 = any free port)")
        p.add_argument("--admin-port", type=_port, default=default,
                       help="loopback admin API port (overrides [server] admin_port; default 8788)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callsync",
        description="Signed call-event webhooks into a durable local store, and call outcomes into your CRM. "
                    "Without a command: the status window.",
        epilog="Server options (--data-dir, --host, --port, --admin-port) may come before or after the command.",
    )
    _common_options(parser, server=True, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    suppress = argparse.SUPPRESS

    serve = sub.add_parser("serve", help="run the receiver and the sync worker without a window",
                           description="Run the hooks listener, the admin API and the CRM sync worker "
                                       "in the foreground until Ctrl-C / SIGTERM. Creates the data dir and a "
                                       "commented config.toml on first start.")
    _common_options(serve, server=True, default=suppress)
    gui = sub.add_parser("gui", help="open the status window (the default command)",
                         description="The status window, running the receiver and the sync worker "
                                     "in the same process.")
    _common_options(gui, server=True, default=suppress)

    check = sub.add_parser("check-crm", help="verify the GoHighLevel token and location",
                           description="GET /locations/{id} with the configured token and say what happened: "
                                       "connected, token rejected, GoHighLevel answered an error, or could "
                                       "not connect. Reads config.toml; never creates it.")
    _common_options(check, server=False, default=suppress)

    replay = sub.add_parser("replay", help="re-queue CRM work (dead letters, one call, or a time range)",
                            description="Put jobs back in the outbox; a running callsync picks them up "
                                        "within seconds. Works while callsync runs.")
    _common_options(replay, server=False, default=suppress)
    what = replay.add_mutually_exclusive_group(required=True)
    what.add_argument("--dead", action="store_true", help="every dead letter")
    what.add_argument("--call", metavar="SOURCE/CALL_ID", help="one call, e.g. dialer/abc-123")
    what.add_argument("--since", metavar="ISO8601", help="calls finished since this time")
    replay.add_argument("--until", metavar="ISO8601", help="with --since: up to this time")

    dead = sub.add_parser("dead", help="list dead letters with their last error",
                          description="Jobs that ran out of retries or failed for good, newest first.")
    _common_options(dead, server=False, default=suppress)
    dead.add_argument("--json", action="store_true", help="machine-readable output")

    secret = sub.add_parser(
        "secret", help="store, remove or check secrets (OS keyring or environment)",
        description="set: read a secret from stdin (or a prompt) into the OS keyring; delete: remove it; "
                    "status: list every secret config.toml needs and where each was found "
                    "(exit 0 when all required ones are present).")
    _common_options(secret, server=False, default=suppress)
    secret.add_argument("action", choices=SECRET_ACTIONS, help="set, delete or status")
    secret.add_argument("user", nargs="?",
                        help="which secret (set/delete): source:NAME, source:NAME:previous, crm:ghl or admin:token")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = args.command or "gui"
    if args.command not in SERVER_COMMANDS:
        for option in ("host", "port", "admin_port"):
            if getattr(args, option, None) is not None:
                parser.error(f"--{option.replace('_', '-')} applies to serve and gui only, not {args.command}")
    return args


def data_dir(args: argparse.Namespace) -> Path:
    return (args.data_dir or default_data_dir()).expanduser()


def load(args: argparse.Namespace, *, create: bool) -> Config:
    config = load_config(data_dir(args), create=create)
    return apply_overrides(config, host=args.host, port=args.port, admin_port=args.admin_port)


def describe_config_file(config: Config) -> str:
    path = config.config_path
    return f"config: {path}" if path.exists() else f"config: {path} (no such file: defaults)"


async def serve(config: Config) -> int:
    from connector.app import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the "ready" lines: a stop request is never lost
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    service = Service(config)
    await service.start()  # StartupError (already cleaned up) ends here as one line
    print(f"callsync: data dir {config.data_dir}", flush=True)
    print(f"callsync: hooks on {service.hooks_url}/hooks/<source>  admin on {service.admin_url}", flush=True)
    await stop.wait()
    print("callsync: stopping", flush=True)
    await service.stop()
    return 0


def required_secrets(config: Config) -> list[tuple[str, bool]]:
    """``(keyring user, required)`` for every secret this configuration uses."""
    from connector import secrets
    from connector.sync.admin_routes import ADMIN_TOKEN_USER
    from connector.sync.worker import TOKEN_USER

    users: list[tuple[str, bool]] = []
    for name in config.sources:
        users += [(secrets.source_user(name), True), (secrets.source_user(name, previous=True), False)]
    if config.ghl.configured:
        users.append((TOKEN_USER, True))
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
        note = "" if required else "  [optional: only while rotating]"
        print(f"  {user:<32} {state}{note}")
    if missing:
        print(f"{len(missing)} required secret(s) missing: {', '.join(missing)}")
        return 1
    print("all required secrets are present")
    return 0


def secret_command(args: argparse.Namespace) -> int:
    import keyring.errors

    from connector import secrets

    if args.action == "status":
        return secret_status(load(args, create=False))
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

    from connector.store.writer import StoreWriter
    from connector.sync import outbox
    from connector.sync.admin_routes import replay_selection

    body = {"dead": args.dead, "call": args.call, "since": args.since, "until": args.until}
    try:
        selection = replay_selection(body)
    except web.HTTPBadRequest as exc:
        print(f"callsync: {exc.text}", file=sys.stderr)
        return 2
    if _store_path(config) is None:
        raise StartupError(f"no store at {config.db_path}: nothing to replay (start callsync once first)")
    # A second writer process is safe (BEGIN IMMEDIATE + busy_timeout); a running worker
    # picks the re-queued jobs up within seconds.
    writer = StoreWriter(str(config.db_path))
    writer.start()
    try:
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

    rows: list[dict] = []
    if _store_path(config) is not None:  # no store yet: no dead letters, and nothing is created
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


def run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "secret":
        return secret_command(args)
    try:
        config = load(args, create=command in SERVER_COMMANDS)
    except (ConfigError, StartupError) as exc:
        if command == "gui" and _window_possible():
            from gui.main import show_startup_error

            return show_startup_error(exc)  # the same line on stderr, and a dialog
        raise
    try:
        if command == "check-crm":
            return check_crm_command(config)
        if command == "replay":
            return replay_command(config, args)
        if command == "dead":
            return dead_command(config, args)
    except sqlite3.Error as exc:
        raise StartupError(f"cannot open the store {config.db_path}: {exc}") from exc
    if command == "serve":
        return asyncio.run(serve(config))
    from gui.main import run_gui

    return run_gui(config)


def _window_possible() -> bool:
    """Whether a dialog can be shown: on X11/Wayland only with a display (Qt aborts without one)."""
    import os

    if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except ConfigError as exc:
        print(f"callsync: configuration error: {one_line(exc)}", file=sys.stderr)
    except StartupError as exc:
        print(f"callsync: cannot start: {one_line(exc)}", file=sys.stderr)
    except OSError as exc:  # anything the checks above did not foresee, still one line
        print(f"callsync: cannot start: {one_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
