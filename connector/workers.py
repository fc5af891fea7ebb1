"""``callsync serve --workers N`` (PostgreSQL store only): N processes serve one port.

The supervisor (the process started by the command) holds the data-dir lock, creates or upgrades
the schema once, reserves the hooks port with ``SO_REUSEPORT`` (so ``--port 0`` gives one port to
all) and starts N ``callsync serve`` child processes.  Each child is a whole service: receiver,
its own store writer (a PostgreSQL connection; ack after commit), admin API, and a CRM sync worker
that claims jobs with ``FOR UPDATE SKIP LOCKED``, a contact's jobs one at a time in the order their
calls ended, whichever process takes them.  The children bind the port with ``SO_REUSEPORT`` and the
kernel spreads new connections over them.  The CRM rate limit, daily budget and concurrency are
shared out so that together the workers stay within what the config allows.  Child 0 serves the
admin API on the configured port, the others on free loopback ports.

A child that dies (crash, ``kill -9``) is started again: what it acknowledged is committed, and a
job it held is taken again by any worker when the lease expires.  The children watch their
standard input, a pipe from the supervisor: if the supervisor dies (even ``kill -9``) it closes and
they stop.  SIGTERM or SIGINT stops the children gracefully, then the supervisor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from connector.config import Config
from connector.startup import DataDirLock, StartupError, listen_error
from connector.sync.crm.ratelimit import parse_rate
from connector.sync.settings import GhlSettings

log = logging.getLogger(__name__)
READY = re.compile(r"hooks on http://(\S+):(\d+)/hooks/<source>\s+admin on http://127\.0\.0\.1:(\d+)")
START_SECONDS = 60.0
STOP_SECONDS = 30.0
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0)  # after 1, 2, 3, 4+ quick deaths in a row


def share(total: int, index: int, workers: int) -> int:
    """Worker ``index``'s part of ``total`` (the parts add up to ``total``; never below 1)."""
    return max(1, total // workers + (1 if index < total % workers else 0))


def crm_share(settings: GhlSettings, index: int, workers: int) -> GhlSettings:
    """Worker ``index``'s part of the CRM rate limit, daily budget and concurrency."""
    count, window = parse_rate(settings.rate_limit)
    return dataclasses.replace(
        settings,
        rate_limit=f"{share(count, index, workers)}/{window:g}s",
        daily_limit=share(settings.daily_limit, index, workers),
        concurrency=share(settings.concurrency, index, workers),
    )


class _HeldBySupervisor:
    """A child's data-dir lock: the supervisor holds the real one."""

    held = True

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


async def serve_worker(config: Config, index: int, workers: int) -> int:
    """One child: the whole service on the shared port, until SIGTERM or the supervisor is gone."""
    from connector.app import Service

    config.ghl = crm_share(config.ghl, index, workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def supervisor_pipe() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:  # the pipe closed: the supervisor stopped or died
            loop.remove_reader(stdin)
            stop.set()

    service = Service(config)
    service.lock = _HeldBySupervisor()  # type: ignore[assignment]
    service.reuse_port = True
    await service.start()
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, supervisor_pipe)
    print(f"callsync: worker {index + 1}/{workers} pid {os.getpid()}: hooks on {service.hooks_url}/hooks/<source>  "
          f"admin on {service.admin_url}", flush=True)
    await stop.wait()
    loop.remove_reader(stdin)
    await service.stop()
    return 0


class _Child:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[str] | None = None
        self.ready = threading.Event()
        self.admin_port: int | None = None
        self.started_at = 0.0
        self.quick_deaths = 0


class Supervisor:
    def __init__(self, config: Config, workers: int, *, verbose: bool = False, log_format: str | None = None) -> None:
        self.config = config
        self.workers = workers
        self.extra_args = (["-v"] if verbose else []) + (["--log-format", log_format] if log_format else [])
        self.lock = DataDirLock(config.data_dir)
        self.children = [_Child(i) for i in range(workers)]
        self.stopping = threading.Event()
        self.port = 0
        self._reserved: socket.socket | None = None

    # -- start ------------------------------------------------------------------------
    def _prepare_store(self) -> None:
        """Connect once and bring the schema up to date, so a wrong URL or password is one line here."""
        import psycopg

        from connector.store import pg_schema
        from connector.store.postgres import open_postgres

        target = self.config.store_target
        try:
            db = open_postgres(target.url or "")
            try:
                pg_schema.migrate(db)
            finally:
                db.close()
        except (psycopg.Error, pg_schema.SchemaTooNew) as exc:
            raise StartupError(f"cannot open the store {target.describe()}: {' '.join(str(exc).split())}") from exc

    def _reserve_port(self) -> None:
        """Bind (without listening) the hooks port with SO_REUSEPORT: a free port for ``--port 0``, and
        an early "port in use" when another program has it."""
        srv = self.config.server
        infos = socket.getaddrinfo(srv.host, srv.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise listen_error(exc, "hooks", srv.host, srv.port, "port", "--port") from exc
        self._reserved = sock
        self.port = sock.getsockname()[1]

    def _command(self, child: _Child) -> list[str]:
        srv = self.config.server
        admin = srv.admin_port if child.index == 0 else 0
        if child.index == 0 and child.admin_port is not None:
            admin = child.admin_port  # a restarted first worker keeps the admin port it had
        base = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "connector"]
        return [*base, "serve", "--data-dir", str(self.config.data_dir), "--host", srv.host, "--port", str(self.port),
                "--admin-port", str(admin), "--worker", f"{child.index}/{self.workers}", *self.extra_args]

    def _spawn(self, child: _Child) -> None:
        child.ready.clear()
        env = os.environ | {"CALLSYNC_STORE_URL": self.config.store.url}
        child.proc = subprocess.Popen(self._command(child), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env)
        child.started_at = time.monotonic()
        threading.Thread(target=self._read, args=(child, child.proc), daemon=True,
                         name=f"worker-{child.index}-out").start()

    def _read(self, child: _Child, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = READY.search(line)
            if match:
                child.admin_port = int(match.group(3))
                child.ready.set()
                log.info("worker %d ready (pid %d)", child.index + 1, proc.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        for child in self.children:
            while not child.ready.wait(0.1):
                assert child.proc is not None
                if child.proc.poll() is not None:
                    raise StartupError(f"worker {child.index + 1} of {self.workers} exited at start "
                                       f"(status {child.proc.returncode}); see its message above")
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise StartupError(f"worker {child.index + 1} of {self.workers} did not start within "
                                       f"{START_SECONDS:.0f} s")

    # -- run --------------------------------------------------------------------------
    def run(self) -> int:
        self.lock.acquire()  # one callsync per data dir, however many processes it has
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stopping.set())
            self._prepare_store()
            self._reserve_port()
            for child in self.children:
                self._spawn(child)
            self._wait_ready()
            srv = self.config.server
            print(f"callsync: data dir {self.config.data_dir}; store {self.config.store_target.describe()}", flush=True)
            print(f"callsync: {self.workers} workers: hooks on http://{srv.host}:{self.port}/hooks/<source>  "
                  f"admin on http://127.0.0.1:{self.children[0].admin_port}", flush=True)
            while not self.stopping.wait(0.2):
                for child in self.children:
                    self._watch(child)
            print("callsync: stopping", flush=True)
            return 0
        finally:
            self._stop_children()
            if self._reserved is not None:
                self._reserved.close()
            self.lock.release()

    def _watch(self, child: _Child) -> None:
        proc = child.proc
        if proc is None or proc.poll() is None:
            return
        lived = time.monotonic() - child.started_at
        child.quick_deaths = child.quick_deaths + 1 if lived < 10 else 0
        delay = RESTART_DELAYS[min(child.quick_deaths, len(RESTART_DELAYS)) - 1] if child.quick_deaths else 0.0
        log.warning("worker %d (pid %d) exited with status %s after %.0f s; starting it again",
                    child.index + 1, proc.pid, proc.returncode, lived)
        if self.stopping.wait(delay):
            return
        self._spawn(child)

    def _stop_children(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop within %.0f s; killing it", proc.pid, STOP_SECONDS)
                proc.kill()
                proc.wait()


def run_supervisor(config: Config, workers: int, args: Any) -> int:
    return Supervisor(config, workers, verbose=bool(getattr(args, "verbose", False)),
                      log_format=getattr(args, "log_format", None)).run()
