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
