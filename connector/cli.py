"""``callsync`` command line, headless: ``serve`` and the tools.  The ``callsync`` launcher
(``gui/launcher.py``) hands :func:`main` a :class:`Window` so that no command (or ``gui``) opens the window;
this module imports nothing from ``gui``.

Every configuration and start-up problem ends as one line on stderr and exit code 2
(:class:`~connector.config.ConfigError`, :class:`~connector.startup.StartupError`), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from connector.config import Config, ConfigError, apply_overrides, default_data_dir, load_config
from connector.cli_tools import (
    check_crm_command,
    dead_command,
    export_command,
    one_line,
    replay_command,
    secret_command,
)
from connector.cli_status import tunnel_printer, tunnel_provider
from connector.startup import StartupError
from connector.version import VERSION

log = logging.getLogger("callsync")

SERVER_COMMANDS = ("serve", "gui")
STORE_COMMANDS = ("serve", "gui", "replay", "dead", "alerts", "doctor", "export", "store")  # accept --store-url
LOG_FORMATS = ("text", "json")
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
        p.add_argument("--log-format", choices=LOG_FORMATS, default=default,
                       help="text (default) or json: one JSON object per line for log collectors")


def _store_option(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--store-url", default=default, metavar="URL",
                   help="use the PostgreSQL store at this URL (postgresql://user@host/db; overrides [store] url "
                        "and CALLSYNC_STORE_URL; the password comes from `callsync secret set store` or "
                        "CALLSYNC_STORE_PASSWORD). Without one: the SQLite file in the data dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callsync",
        description="Signed call-event webhooks into a durable local store, and call outcomes into your CRM. "
                    "Without a command: the status window.",
        epilog="Server options (--data-dir, --host, --port, --admin-port) may come before or after the command.",
    )
    _common_options(parser, server=True, default=None)
    _store_option(parser, None)
    parser.add_argument("--version", action="version", version=f"callsync {VERSION}",
                        help="print the version and exit")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation (receiver, store, CRM queue, keyring, window toolkit) "
                             "on free loopback ports in a temporary data dir, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    suppress = argparse.SUPPRESS

    serve = sub.add_parser("serve", help="run the receiver and the sync worker without a window",
                           description="Run the hooks listener, the admin API and the CRM sync worker "
                                       "in the foreground until Ctrl-C / SIGTERM. Creates the data dir and a "
                                       "commented config.toml on first start.")
    _common_options(serve, server=True, default=suppress)
    _store_option(serve, suppress)
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N receiver processes on one port, each with a CRM sync worker (PostgreSQL store only)")
    serve.add_argument("--worker", metavar="I/N",
                       help="used by serve --workers N for its worker processes (worker I of N); not for direct use")
    serve.add_argument("--tunnel", nargs="?", const="", type=tunnel_provider, metavar="PROVIDER",
                       help="open the public HTTPS URL ([tunnel], remembered in config.toml like the window's "
                            "switch): the configured provider, else ngrok; or name one: ngrok | cloudflared")
    gui = sub.add_parser("gui", help="open the status window (the default command)",
                         description="The status window, running the receiver and the sync worker "
                                     "in the same process.")
    _common_options(gui, server=True, default=suppress)
    _store_option(gui, suppress)

    status = sub.add_parser("status", help="is callsync running: its health and its tunnel",
                            description="Ask the running callsync (its admin API on [server] admin_port) for its "
                                        "health and its tunnel: state and public URL. Exit 0 when running and "
                                        "healthy, 1 when running with a problem, 3 when not running.")
    _common_options(status, server=False, default=suppress)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    check = sub.add_parser("check-crm", help="verify the GoHighLevel token and location",
                           description="GET /locations/{id} with the configured token and say what happened: "
                                       "connected, token rejected, GoHighLevel answered an error, or could "
                                       "not connect. Reads config.toml; never creates it.")
    _common_options(check, server=False, default=suppress)

    replay = sub.add_parser("replay", help="re-queue CRM work (dead letters, one call, or a time range)",
                            description="Put jobs back in the outbox; a running callsync picks them up "
                                        "within seconds. Works while callsync runs.")
    _common_options(replay, server=False, default=suppress)
    _store_option(replay, suppress)
    what = replay.add_mutually_exclusive_group(required=True)
    what.add_argument("--dead", action="store_true", help="every dead letter")
    what.add_argument("--call", metavar="SOURCE/CALL_ID", help="one call, e.g. dialer/abc-123")
    what.add_argument("--since", metavar="ISO8601", help="calls finished since this time")
    replay.add_argument("--until", metavar="ISO8601", help="with --since: up to this time")

    dead = sub.add_parser("dead", help="list dead letters with their last error",
                          description="Jobs that ran out of retries or failed for good, newest first.")
    _common_options(dead, server=False, default=suppress)
    _store_option(dead, suppress)
    dead.add_argument("--json", action="store_true", help="machine-readable output")

    alerts = sub.add_parser("alerts", help="list the automations' alerts, newest first",
                            description="Alerts raised by [automations.*] (DID burn, abandon rate, caller ID, "
                                        "voicemail, carrier failures, agent pauses) with their evidence. "
                                        "Works while callsync runs; '!' marks alerts not yet acknowledged.")
    _common_options(alerts, server=False, default=suppress)
    _store_option(alerts, suppress)
    alerts.add_argument("--since", metavar="ISO8601", help="only alerts raised since this time")
    alerts.add_argument("--recipe", help="only this recipe's alerts (e.g. abandon)")
    alerts.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    alerts.add_argument("--json", action="store_true", help="machine-readable output")

    doctor = sub.add_parser("doctor", help="check everything a support call would, with a fix for each failure",
                            description="Keyring, secrets, data dir and free space, store integrity, ports, "
                                        "CRM token, public URL and clock. Works with callsync stopped or "
                                        "running; exit 0 only when every check passes.")
    _common_options(doctor, server=False, default=suppress)
    _store_option(doctor, suppress)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export", help="write calls or events to a CSV or JSON Lines file",
                            description="Stream calls or events (with their raw bodies) to a file; "
                                        "--since/--until filter on the time they were received. "
                                        "Works while callsync runs.")
    _common_options(export, server=False, default=suppress)
    _store_option(export, suppress)
    export.add_argument("what", choices=("calls", "events"), help="calls (one row per call) or events")
    export.add_argument("--since", metavar="ISO8601", help="received at or after this time")
    export.add_argument("--until", metavar="ISO8601", help="received before this time")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the file to write")

    store = sub.add_parser("store", help="store tools: copy the desktop store into PostgreSQL",
                           description="copy: move this data dir's store (every event, call, job, dead letter, "
                                       "contact and counter) into an empty PostgreSQL database, creating the "
                                       "schema; run it with callsync stopped. Prints the rows per table and "
                                       "checksums computed on both sides.")
    _common_options(store, server=False, default=suppress)
    store.add_argument("action", choices=("copy",), help="copy")
    store.add_argument("--to", metavar="URL", help="postgresql://user@host/db (default: the store URL in force)")

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
        for option in ("host", "port", "admin_port", "log_format"):
            if getattr(args, option, None) is not None:
                parser.error(f"--{option.replace('_', '-')} applies to serve and gui only, not {args.command}")
    if args.command not in STORE_COMMANDS and getattr(args, "store_url", None) is not None:
        parser.error(f"--store-url does not apply to {args.command}")
    return args


def data_dir(args: argparse.Namespace) -> Path:
    return (args.data_dir or default_data_dir()).expanduser()


def load(args: argparse.Namespace, *, create: bool) -> Config:
    from connector.store_url import chosen_url

    config = load_config(data_dir(args), create=create)
    config.store.url = chosen_url(config.store.url, getattr(args, "store_url", None))
    return apply_overrides(config, host=args.host, port=args.port, admin_port=args.admin_port)


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
    service.tunnel.listeners.append(tunnel_printer(service.tunnel))
    await service.start()  # StartupError (already cleaned up) ends here as one line
    print(f"callsync: data dir {config.data_dir}", flush=True)
    print(f"callsync: hooks on {service.hooks_url}/hooks/<source>  admin on {service.admin_url}", flush=True)
    await stop.wait()
    print("callsync: stopping", flush=True)
    await service.stop()
    return 0


class Window(Protocol):
    """What opens the window; the ``callsync`` launcher (``gui/launcher.py``) provides it.  This module
    is headless: without a window, ``gui`` is refused with one line."""

    def possible(self) -> bool:
        """Whether a dialog can be shown here (a display, or an offscreen platform)."""

    def run(self, config: Config) -> int:
        """Run callsync with its window until it quits."""

    def show_error(self, exc: Exception) -> int:
        """Show a start-up error as one line on stderr and a dialog; the exit code."""

    def self_checks(self) -> list[Callable[[], Any]]:
        """Checks --self-test adds for the window (its toolkit's platform plugin loads)."""


def self_test(window: Window | None = None) -> int:
    from connector import selftest

    return selftest.run(window.self_checks() if window is not None else [])


def run(args: argparse.Namespace, window: Window | None = None) -> int:
    command = args.command
    if args.self_test:
        return self_test(window)
    if command == "gui" and window is None:
        raise StartupError("the window is opened by the `callsync` command (`callsync gui`); "
                           "this command line is headless: use `serve` to run without a window")
    if command == "secret":
        return secret_command(args, lambda: load(args, create=False))
    try:
        config = load(args, create=command in SERVER_COMMANDS)
    except (ConfigError, StartupError) as exc:
        if command == "gui" and window is not None and window.possible():
            return window.show_error(exc)  # the same line on stderr, and a dialog
        raise
    try:
        if command == "check-crm":
            return check_crm_command(config)
        if command == "status":
            from connector.cli_status import status_command

            return status_command(config, as_json=args.json)
        if command == "replay":
            return replay_command(config, args)
        if command == "dead":
            return dead_command(config, args)
        if command == "alerts":
            from connector.cli_alerts import alerts_command

            return alerts_command(config, args)
        if command == "doctor":
            from connector import doctor

            return doctor.run(config, as_json=args.json)
        if command == "export":
            return export_command(config, args)
        if command == "store":
            from connector.cli_server import store_copy_command

            return store_copy_command(config, args)
    except sqlite3.Error as exc:
        raise StartupError(f"cannot open the store {config.db_path}: {exc}") from exc
    if command == "serve":
        from connector.cli_server import check_workers

        check_workers(config, args.workers)
        if args.tunnel is not None and not args.worker:
            from connector.cli_status import enable_tunnel

            enable_tunnel(config, args.tunnel)
        if args.worker:
            from connector.workers import serve_worker

            index, _, total = args.worker.partition("/")
            return asyncio.run(serve_worker(config, int(index), int(total)))
        if args.workers > 1:
            from connector.workers import run_supervisor

            return run_supervisor(config, args.workers, args)
        return asyncio.run(serve(config))
    assert window is not None
    return window.run(config)


def main(argv: list[str] | None = None, *, window: Window | None = None) -> int:
    """The command line; ``window`` (from ``gui/launcher.py``) opens the window for ``gui``."""
    args = parse_args(argv)
    from connector import logs

    logs.setup(logging.DEBUG if args.verbose else logging.INFO, getattr(args, "log_format", None) or "text")
    try:
        return run(args, window)
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
