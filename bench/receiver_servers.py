"""The servers the receiver benchmark loads, one per subprocess.

    python bench/receiver_servers.py bare    --data-dir DIR
    python bench/receiver_servers.py minimal --data-dir DIR
    python bench/receiver_servers.py verify --data-dir DIR
    python bench/receiver_servers.py serve  --data-dir DIR

``bare``    an aiohttp handler that reads the body and answers 200 JSON.
``minimal`` the least a verifier does: an aiohttp handler that checks the body's HMAC-SHA256
            (hex, ``X-Webhook-Signature``, constant-time compare) and parses the JSON, nothing
            else - the yardstick callsync's durable throughput is measured against.
``verify``  callsync's own :class:`HooksReceiver` (source lookup, size and
            content-type checks, ``verify_hmac`` with the source's config,
            ``formats.normalize``, header redaction, latency window) with a
            writer that stores nothing: every event is answered "stored" at once.
``serve``   exactly ``python -m connector serve`` (``connector.cli.main``), plus
            one thing: on SIGUSR1 it prints the store writer's counters
            ("bench-writer batches=N items=M") so the mean group-commit batch can
            be measured over a time window.

With ``BENCH_PATCH=FILE`` in the environment, FILE is run (``runpy.run_path``)
before the server starts: a way to try a change to connector/ (monkeypatching
it) in a benchmark run without editing the code.

``bare``, ``minimal`` and ``verify`` listen on a free port on 127.0.0.1, configured like
callsync's listener (``AppRunner(access_log=None)``), print
"bench-server: <mode> on http://127.0.0.1:PORT" and stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web


async def bare_handler(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "stored"})


def bare_app(data_dir: Path) -> web.Application:
    from connector.config import load_config

    app = web.Application(client_max_size=load_config(data_dir).server.max_body_bytes)
    app.router.add_post("/hooks/{name}", bare_handler)
    return app


def minimal_app(data_dir: Path) -> web.Application:
    from connector.config import load_config

    secret = os.environ["CALLSYNC_SECRET_BENCH"].encode()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Webhook-Signature", "")):
            return web.json_response({"status": "rejected"}, status=401)
        try:
            json.loads(body)
        except ValueError:
            return web.json_response({"status": "rejected"}, status=400)
        return web.json_response({"status": "stored"})

    app = web.Application(client_max_size=load_config(data_dir).server.max_body_bytes)
    app.router.add_post("/hooks/{name}", handler)
    return app


class NullWriter:
    """Stands in for StoreWriter: every event is "stored" without touching a disk."""

    def __init__(self) -> None:
        self.next_id = 0

    def count(self, name: str, n: int = 1, at: float | None = None) -> None:
        pass

    def busy_seconds(self) -> float:
        return 0.0

    def store(self, item: Any) -> asyncio.Future[Any]:
        from connector.store.writer import Stored

        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(Stored(False, self.next_id, item.source, item.event, None, None, item.received_at))
        return fut


def verify_app(data_dir: Path) -> web.Application:
    from connector.config import load_config
    from connector.receiver.hooks import HooksReceiver

    receiver = HooksReceiver(load_config(data_dir), NullWriter())  # type: ignore[arg-type]
    return receiver.make_app()


async def listen(mode: str, app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    print(f"bench-server: {mode} on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve_with_counters(data_dir: Path) -> int:
    from connector import cli
    from connector.store.writer import StoreWriter

    writers: list[StoreWriter] = []
    original_start = StoreWriter.start

    def start(self: StoreWriter) -> None:
        writers.append(self)
        original_start(self)

    StoreWriter.start = start  # type: ignore[method-assign]

    def report(signum: int, frame: Any) -> None:
        batches = sum(w.batches for w in writers)
        items = sum(w.items for w in writers)
        print(f"bench-writer batches={batches} items={items}", flush=True)

    signal.signal(signal.SIGUSR1, report)
    return cli.main(["serve", "--data-dir", str(data_dir)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("bare", "minimal", "verify", "serve"))
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    patch = os.environ.get("BENCH_PATCH")
    if patch:
        runpy.run_path(patch, run_name="bench_patch")
    if args.mode == "serve":
        return serve_with_counters(args.data_dir)
    app = {"bare": bare_app, "minimal": minimal_app, "verify": verify_app}[args.mode](args.data_dir)
    asyncio.run(listen(args.mode, app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
