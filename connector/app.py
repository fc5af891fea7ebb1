"""Wires the store writer, receiver, admin API and sync worker onto one event loop.

``callsync serve`` and the window both create a :class:`Service` and await
``start()`` / ``stop()``; nothing here knows about Qt.  ``start()`` fails with
:class:`StartupError` (re-exported from ``connector.startup``), one sentence to show as is.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from secrets import token_urlsafe

from aiohttp import web

from connector import secrets

from connector.admin.api import AdminApi
from connector.automations.admin_routes import add_automation_routes
from connector.automations.service import Automations
from connector.config import Config
from connector.metrics import LatencyWindow
from connector.housekeeping import Retention
from connector.prom import PromMetrics
from connector.startup import DataDirLock, StartupError, listen_error
from connector.receiver.hooks import HooksReceiver
from connector.receiver.listener import HooksListener
from connector.store import faults, jobs, retention, stats
from connector.store.health import StorageProbe
from connector.store.migrations import SchemaTooNew
from connector.store.reader import StoreReader
from connector.store.writer import StoreWriter
from connector.sync.admin_routes import ADMIN_TOKEN_USER, add_sync_routes
from connector.sync.worker import SyncWorker
from connector.reconcile.runner import Heartbeat, Reconciler
from connector.tunnel.admin_routes import add_tunnel_routes
from connector.tunnel.manager import ProviderFactory, Tunnel

log = logging.getLogger(__name__)

MetricsProvider = Callable[[], Awaitable[dict[str, Any]]]
WORKERS_TUNNEL = ("serve --workers does not open the tunnel (each worker would open its own): put your proxy's "
                  "https URL in [server] public_url.")
STALLED_SECONDS = 2.0  # a write taking longer means the writer is stuck (health says so)


def ensure_admin_token() -> None:
    """Mutating admin routes need a bearer token; create one in the keyring on first start."""
    if secrets.get_secret(ADMIN_TOKEN_USER):
        return
    usable, message = secrets.keyring_usable()
    if not usable:
        log.warning("admin replay endpoints are disabled until CALLSYNC_ADMIN_TOKEN is set (%s)", message)
        return
    try:
        secrets.set_secret(ADMIN_TOKEN_USER, token_urlsafe(32))
    except Exception as exc:  # noqa: BLE001 - keyring refused: endpoints stay disabled
        log.warning("could not store an admin token in the keyring: %s", exc)


def summarize_counters(totals: dict[str, int]) -> dict[str, Any]:
    rejected = {name.split(":", 1)[1]: n for name, n in totals.items() if name.startswith("rejected:")}
    stored, deduped = totals.get("stored", 0), totals.get("deduped", 0)
    return {
        "received": stored + deduped + sum(rejected.values()),
        "stored": stored,
        "deduped": deduped,
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
    }


def _postgres_probe(url: str) -> Callable[[], str | None]:
    from connector.store.postgres import PgProbe  # psycopg loads only in server mode

    return PgProbe(url)


STOP_SECONDS = 15.0


async def _bounded(step: Awaitable[Any], what: str) -> None:
    """One step of the shutdown: logged and left behind when it fails or takes too long."""
    try:
        await asyncio.wait_for(step, STOP_SECONDS)
    except asyncio.TimeoutError:
        log.error("%s took over %.0f s; going on with the shutdown", what, STOP_SECONDS)
    except Exception:  # noqa: BLE001 - keep shutting down the rest
        log.exception("%s failed", what)


class Service:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 tunnel_providers: Mapping[str, ProviderFactory] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.target = config.store_target
        self.writer = StoreWriter(self.target)
        self.reader = StoreReader(self.target)
        self.prom = PromMetrics()
        self.latency = LatencyWindow(on_observe=self.prom.observe_ack_ms)
        self.receiver = HooksReceiver(config, self.writer, latency=self.latency, clock=clock,
                                      public_url=self.public_url)
        self.tunnel = Tunnel(config.tunnel, config.data_dir, providers=tunnel_providers,
                             sources=lambda: list(self.config.sources))
        self.admin = AdminApi(self)
        self.metric_providers: list[MetricsProvider] = [self._sync_metrics]
        self.ghl = config.ghl  # validated when the config was loaded
        self.worker = SyncWorker(self.writer, self.reader, self.ghl, clock=clock)
        self.worker.attempt_observers.append(self.prom.observe_crm)
        self.worker.completion_observers.append(self.prom.observe_sync_seconds)
        self.writer.on_jobs_queued.append(self.worker.notify)
        add_sync_routes(self.admin.app, self)
        add_tunnel_routes(self.admin.app, self)
        self.automations = Automations(config.automations, self.writer, self.reader, clock=clock,
                                       alone=lambda: not self.reuse_port)
        self.writer.on_stored.append(self.automations.on_stored)
        add_automation_routes(self.admin.app, self)
        self.retention = Retention(self.writer, config.retention.raw_payload_days, clock=clock)
        self.background: list[Any] = [self.worker, self.retention, self.automations]  # async start()/stop()
        # Downtime and gap fill: the heartbeat starts first and stops last; reconciliation runs at start-up.
        self.heartbeat = Heartbeat(self.writer, clock=clock)
        self.reconciler = Reconciler(config, self.writer, self.reader, clock=clock)
        self.background = [self.heartbeat, *self.background, self.reconciler]
        self.metric_providers.append(self.reconciler.metrics)
        self._runners: list[web.AppRunner] = []
        self.hooks_port: int | None = None
        self.admin_port: int | None = None
        self.started_at: float | None = None
        self.lock = DataDirLock(config.data_dir)
        self.hooks_listener: HooksListener | None = None
        self.reuse_port = False  # serve --workers: several processes share the hooks port (SO_REUSEPORT)
        self.probe = StorageProbe(str(config.db_path), lock_is_ours=self._writer_committed_recently,
                                  check=_postgres_probe(self.target.url) if self.target.url else None)

    async def start(self) -> None:
        """Start everything or nothing: a failure stops what started and raises :class:`StartupError`
        (data dir in use or not writable, store that cannot be opened, port in use)."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.lock.acquire()  # a second callsync on this data dir stops here, naming the first
        try:
            self.writer.start()
        except (sqlite3.Error, SchemaTooNew) as exc:
            raise StartupError(f"cannot open the store {self.target.describe()}: {exc}") from exc
        except Exception as exc:
            if not faults.from_postgres(exc):
                raise
            raise StartupError(f"cannot open the store {self.target.describe()}: {' '.join(str(exc).split())}") from exc
        except OSError as exc:
            raise StartupError(f"cannot open the store {self.target.describe()}: {exc.strerror or exc}") from exc
        ensure_admin_token()
        srv = self.config.server
        self.hooks_listener = HooksListener(
            self.receiver.make_app(), srv.host, srv.port, header_timeout=srv.header_timeout_seconds,
            idle_timeout=srv.idle_timeout_seconds, max_connections=srv.max_connections, reuse_port=self.reuse_port)
        try:
            self.hooks_port = await self.hooks_listener.start()
        except OSError as exc:
            raise listen_error(exc, "hooks", srv.host, srv.port, "port", "--port") from exc
        self.admin_port = await self._listen(self.admin.app, "127.0.0.1", srv.admin_port,
                                             ("admin", "admin_port", "--admin-port"))
        for part in self.background:
            await part.start()
        if self.reuse_port:  # serve --workers: N processes would open N tunnels to one port
            self.tunnel.refuse(WORKERS_TUNNEL)
        else:
            await self.tunnel.start(self.tunnel_target)  # in the background: never delays or stops the receiver
        self.started_at = self.clock()
        log.info(
            "callsync listening: hooks http://%s:%s/hooks/<source>, admin http://127.0.0.1:%s",
            srv.host,
            self.hooks_port,
            self.admin_port,
        )

    async def _listen(self, app: web.Application, host: str, port: int, names: tuple[str, str, str]) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(exc, names[0], host, port, names[1], names[2]) from exc
        return runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop everything; no part may hold the shutdown for more than ``STOP_SECONDS``."""
        for part in (self.tunnel, *reversed(self.background)):
            await _bounded(part.stop(), f"stopping {type(part).__name__}")
        if self.hooks_listener is not None:
            await _bounded(self.hooks_listener.stop(), "closing the hooks listener")
            self.hooks_listener = None
        for runner in reversed(self._runners):
            await _bounded(runner.cleanup(), "closing a listener")
        self._runners.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.writer.stop)
        self.reader.close()
        self.lock.release()

    @property
    def hooks_url(self) -> str:
        return f"http://{self.config.server.host}:{self.hooks_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def tunnel_target(self) -> str:
        """Where the tunnel forwards: the hooks listener (never the admin port), by a loopback address
        when it listens on every interface."""
        host = self.config.server.host
        host = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
        return f"[{host}]:{self.hooks_port}" if ":" in host and not host.startswith("[") else f"{host}:{self.hooks_port}"

    def public_url(self) -> str:
        """The URL senders call (Twilio signs it): ``[server] public_url``, else the tunnel's, else ""."""
        return self.config.server.public_url or self.tunnel.public_url or ""

    def apply_config(self, fresh: Config) -> None:
        """Use a freshly loaded configuration from now on, without a restart (the window edits sources,
        the public URL and [crm.ghl] while callsync runs).  The receiver reads ``config.sources`` and
        ``config.server`` per request, so they are updated in place; the CRM settings go to the worker."""
        live = self.config.sources
        for name in [n for n in live if n not in fresh.sources]:
            del live[name]
        live.update(fresh.sources)
        self.config.server.public_url = fresh.server.public_url
        self.config.raw = fresh.raw
        self.config.ghl = self.ghl = fresh.ghl
        self.worker.apply_settings(fresh.ghl)
        self.reconciler.refresh()  # a Twilio source that now reconciles runs at once

    def _writer_committed_recently(self) -> bool:
        last = self.writer.last_commit_at
        return last is not None and time.monotonic() - last < STALLED_SECONDS

    async def health(self) -> dict[str, Any]:
        """Whether storage can take a write now, within about a second (never waits on the database):
        ``{"ok", "reason", "writer", "database", "store"}``."""
        status = self.writer.status()
        reasons = []
        if not status["alive"]:
            reasons.append("the store writer stopped")
        elif status["busy_seconds"] > STALLED_SECONDS:
            reasons.append(f"the store writer has been stuck on one write for {status['busy_seconds']:.0f} s")
        if status["last_error"]:
            reasons.append(f"the last write failed: {status['last_error']}")
        storage = await self.probe.check()
        if storage:
            reasons.append(storage)
        return {"ok": not reasons, "reason": "; ".join(reasons) or None, "writer": status["alive"],
                "database": storage is None, "store": status}

    async def metrics(self) -> dict[str, Any]:
        now = self.clock()
        since = int((now - 24 * 3600) // 3600 * 3600)
        totals = await self.reader.run(stats.totals)
        hours = await self.reader.run(stats.by_hour, since)
        result: dict[str, Any] = summarize_counters(totals)
        result["queue_depth"] = self.writer.depth
        result["ack_latency_ms"] = self.latency.summary()
        result["per_hour"] = [{"hour": hour} | summarize_counters(counts) for hour, counts in sorted(hours.items())]
        result["uptime_seconds"] = round(now - self.started_at, 1) if self.started_at else 0
        if self.target.url:
            from connector.store.postgres import database_bytes

            result["store_bytes"] = await self.reader.run(database_bytes)
        else:
            result["store_bytes"] = retention.store_bytes(str(self.config.db_path))
        result["retention"] = {"raw_payload_days": self.retention.days, "dropped": self.retention.dropped,
                               "last_run": self.retention.last_run}
        for provider in self.metric_providers:
            result.update(await provider())
        result["queue_depth"] += result.get("pending", 0)
        return result

    async def _sync_metrics(self) -> dict[str, Any]:
        result = await self.reader.run(jobs.sync_metrics, self.clock())
        result["crm"] = self.worker.state()
        return result
