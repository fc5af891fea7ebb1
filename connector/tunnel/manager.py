"""The tunnel's state machine: ``off`` -> ``connecting`` -> ``up``, or ``error`` with one sentence.

Opening runs in the background: start-up never waits on it and a failure never stops the local
receiver.  A failure that waiting can cure (no network, the provider's process exited) is retried
on ``retry_schedule``, so the tunnel comes back by itself when the network does; one that cannot
(no account, wrong authtoken, cloudflared not installed) stays in ``error`` until the settings or the
token change (:meth:`Tunnel.apply`, :meth:`Tunnel.retry_now`).

The last public URL is kept in ``DATA_DIR/tunnel.json``; a different one is announced in the log
and in :attr:`Tunnel.notice` ("update the webhook URL in your dialer to ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from connector.tunnel.base import FAILED, TunnelError, TunnelProvider
from connector.tunnel.settings import NGROK_TOKEN_USER, TunnelSettings

log = logging.getLogger(__name__)

STATES = ("off", "connecting", "up", "error")
STATE_FILE = "tunnel.json"
RETRY_SCHEDULE = (2.0, 5.0, 10.0, 30.0, 60.0)  # seconds between attempts; the last one repeats

ProviderFactory = Callable[[TunnelSettings], TunnelProvider]


def default_providers() -> dict[str, ProviderFactory]:
    def ngrok(settings: TunnelSettings) -> TunnelProvider:
        from connector import secrets
        from connector.tunnel.ngrok_provider import NgrokProvider

        return NgrokProvider(secrets.get_secret(NGROK_TOKEN_USER), settings.domain)

    def cloudflared(settings: TunnelSettings) -> TunnelProvider:
        from connector.tunnel.cloudflared import CloudflaredProvider

        return CloudflaredProvider(settings.tunnel_name, settings.domain)

    return {"ngrok": ngrok, "cloudflared": cloudflared}


def change_notice(previous: str | None, url: str, sources: Iterable[str]) -> str | None:
    """The sentence for a public URL that differs from the last run's (None when it does not)."""
    if not previous or previous == url:
        return None
    names = sorted(sources)
    where = ", ".join(f"{url}/hooks/{name}" for name in names) if names else f"{url}/hooks/<source>"
    return f"The public URL changed from {previous} to {url}: update the webhook URL in your dialer to {where}."


class _Sink:
    """Events of one opened provider; ignored once the tunnel moved on to another."""

    def __init__(self, tunnel: Tunnel, provider: TunnelProvider) -> None:
        self.tunnel, self.provider = tunnel, provider

    def _current(self) -> bool:
        return self.tunnel._provider is self.provider

    def down(self, reason: str) -> None:
        if self._current():
            log.warning("tunnel (%s): %s", self.provider.name, reason)
            self.tunnel._set("connecting", reason)

    def back(self) -> None:
        if self._current():
            log.info("tunnel (%s): reconnected, %s", self.provider.name, self.tunnel.public_url)
            self.tunnel._set("up", None)

    def ended(self, reason: str) -> None:
        if self._current():
            log.warning("tunnel (%s): %s", self.provider.name, reason)
            self.tunnel._set("connecting", reason)
            self.tunnel._ended.set()


class Tunnel:
    def __init__(self, settings: TunnelSettings, data_dir: Path, *,
                 providers: Mapping[str, ProviderFactory] | None = None,
                 sources: Callable[[], Iterable[str]] = tuple,
                 retry_schedule: Sequence[float] = RETRY_SCHEDULE) -> None:
        self.settings = settings
        self.path = Path(data_dir) / STATE_FILE
        self.providers = dict(providers or default_providers())
        self.sources = sources
        self.retry_schedule = tuple(retry_schedule)
        self.state = "off"
        self.public_url: str | None = None
        self.error: str | None = None
        self.notice: str | None = None  # the URL changed since the last run: what to tell the dialer
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._target: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._provider: TunnelProvider | None = None
        self._ended = asyncio.Event()
        self._nudge = asyncio.Event()

    # -- what others read ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``GET /api/tunnel``: ``{"provider", "state", "public_url", "error"}``."""
        return {"provider": self.settings.provider or None, "state": self.state, "public_url": self.public_url,
                "error": self.error}

    def _set(self, state: str, error: str | None) -> None:
        changed = (state, error) != (self.state, self.error)
        self.state, self.error = state, error
        if changed:
            for listener in list(self.listeners):
                try:
                    listener(self.status())
                except Exception:  # noqa: BLE001 - a listener never stops the tunnel
                    log.exception("tunnel listener failed")

    # -- control ------------------------------------------------------------------------
    async def start(self, target: str) -> None:
        """Open the tunnel to ``target`` (``127.0.0.1:<hooks port>``) in the background when the settings
        say so; returns at once."""
        self._target = target
        if self.settings.active:
            self._launch()

    def refuse(self, reason: str) -> None:
        """This process must not open the tunnel (``serve --workers``): say why, when one is configured."""
        if self.settings.active:
            self._set("error", reason)

    async def apply(self, settings: TunnelSettings) -> None:
        """New settings (the window's switch, a new provider or domain): reopen or close as they say."""
        if settings == self.settings and (self._task is not None) == settings.active:
            return
        await self._halt()
        self.settings = settings
        self.public_url, self.notice = None, None
        if settings.active and self._target:
            self._launch()
        else:
            self._set("off", None)

    def retry_now(self) -> None:
        """Try again at once (a new authtoken was saved, the user asked); reopens a tunnel in error."""
        if self._task is None and self.settings.active and self._target:
            self._launch()
        self._nudge.set()

    async def stop(self) -> None:
        await self._halt()
        self.public_url = None
        self._set("off", None)

    async def _halt(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_provider()

    async def _close_provider(self) -> None:
        provider, self._provider = self._provider, None
        if provider is not None:
            try:
                await provider.close()
            except Exception:  # noqa: BLE001 - providers promise not to raise; be safe anyway
                log.exception("closing the %s tunnel failed", provider.name)

    def _launch(self) -> None:
        self._nudge.clear()
        self._task = asyncio.create_task(self._run(), name="tunnel")

    # -- the loop -------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while True:
            self._set("connecting", self.error if failures else None)
            factory = self.providers[self.settings.provider]
            try:
                provider = factory(self.settings)
                self._provider = provider
                self._ended.clear()
                url = await provider.open(self._target or "", _Sink(self, provider))
            except TunnelError as exc:
                await self._close_provider()
                log.warning("tunnel (%s): %s", self.settings.provider, exc.message)
                self._set("error", exc.message)
                if not exc.retry:
                    self._task = None
                    return
                failures += 1
                await self._pause(failures)
                continue
            except Exception as exc:  # noqa: BLE001 - an unforeseen provider failure is still one sentence
                await self._close_provider()
                message = TunnelError(FAILED, f"{self.settings.provider} failed: {exc}", retry=True).message
                log.warning("tunnel (%s): %s", self.settings.provider, message, exc_info=True)
                self._set("error", " ".join(message.split()))
                failures += 1
                await self._pause(failures)
                continue
            failures = 0
            self._came_up(url.rstrip("/"))
            await self._ended.wait()  # the provider gave up (its process exited): open it again
            await self._close_provider()

    async def _pause(self, failures: int) -> None:
        delay = self.retry_schedule[min(failures, len(self.retry_schedule)) - 1] if self.retry_schedule else 0
        self._nudge.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._nudge.wait(), delay)

    def _came_up(self, url: str) -> None:
        previous = self._last_url()
        notice = change_notice(previous, url, self.sources())
        if notice:
            self.notice = notice
            log.warning("%s", notice)
        self.public_url = url
        self._remember(url)
        log.info("tunnel (%s) up: %s forwards to %s", self.settings.provider, url, self._target)
        self._set("up", None)

    # -- the last run's URL ---------------------------------------------------------------
    def _last_url(self) -> str | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        url = data.get("public_url") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None

    def _remember(self, url: str) -> None:
        tmp = self.path.with_name(f".{STATE_FILE}.tmp")
        try:
            tmp.write_text(json.dumps({"public_url": url, "provider": self.settings.provider}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not remember the public URL in %s: %s", self.path, exc)
