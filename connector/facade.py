"""What the window shows and does, over a running :class:`connector.app.Service`.

Qt-free: the views in ``gui/`` call these methods and render the plain data
they return.  Reads go through the store reader's threads (``await
service.reader.run(...)``), so the event loop that also serves the webhooks is
never blocked by SQL.  Config edits go through :mod:`connector.config_edit`
and are applied to the running service at once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import keyring.errors

from connector import config_edit, secrets, window_export
from connector import window_queries as wq
from connector.automations.controls import AutomationControls
from connector.autostart import Autostart, default_launch_command
from connector.config import ConfigError, SourceConfig, parse_config, parse_source
from connector.doctor import Item, diagnose
from connector.health import health_target, health_verdict, signature_alerts
from connector.redact import mask_headers, pretty_payload
from connector.store import calls as store_calls
from connector.store import events as store_events
from connector.store import jobs, stats
from connector.sync.settings import DEFAULT_RULES, GhlSettings, Rule
from connector.sync.worker import TOKEN_USER
from connector.test_events import TEST_HEADER, sample_payload, sign_request
from connector.reconcile.gaps import dashboard_notice
from connector.reconcile.plan import mark_incomplete
from connector.tunnel.controls import TunnelControls
from connector.window_export import ExportJob, ExportOutcome, ExportRequest
from connector.window_views import (
    CrmView,
    KeyringStatus,
    SecretStoreUnavailable,
    SecretVariable,
    SendResult,
    Snapshot,
    SourceView,
)

__all__ = ["CrmView", "Facade", "KeyringStatus", "SecretStoreUnavailable", "SecretVariable", "SendResult",
           "Snapshot", "SourceView"]

CHART_HOURS = 3
SNAPSHOT_MAX_AGE = 30.0  # seconds a cached snapshot may be reused while nothing changed
ALERT_SECONDS = 3600  # signature failures this recent put a banner on the dashboard
REJECTIONS_SECONDS = 24 * 3600  # what the Sources tab counts


# -- the facade -----------------------------------------------------------------------


class Facade:
    def __init__(self, service: Any, *, autostart: Autostart | None = None) -> None:
        self.service = service
        self.autostart = autostart or Autostart(default_launch_command(service.config.data_dir))
        self._cached: Snapshot | None = None
        self._cache_key: tuple[Any, ...] | None = None
        self._failed_calls: tuple[Any, int] = (None, 0)  # (counters it was taken at, count)
        self.tunnel = TunnelControls(service)  # the public URL: switch, authtoken, "test from outside"
        self.automations = AutomationControls(service)  # recipes, alerts, acknowledge, desktop notifications

    @property
    def config(self):  # noqa: ANN201 - connector.config.Config
        return self.service.config

    def data_version(self) -> int:
        """Changes whenever the store wrote something (in memory, free to call often)."""
        return int(self.service.writer.items)

    # -- dashboard ----------------------------------------------------------------
    async def snapshot(self, *, fresh: bool = False) -> Snapshot:
        """Metrics, verdict and chart series; reused for up to 30 s while nothing was written."""
        now = self.service.clock()
        worker_state = self.service.worker.state()
        writer = self.service.writer
        # Batches change with counters too (rejected requests store no event).
        tunnel = self.tunnel.view()
        key = (self.data_version(), writer.batches, writer.depth, tuple(sorted(worker_state.items())),
               tunnel.state, tunnel.public_url, tunnel.error, tunnel.notice)
        cached = self._cached
        if not fresh and cached and key == self._cache_key and now - cached.taken_at < SNAPSHOT_MAX_AGE:
            return cached
        since = (now - CHART_HOURS * 3600) // 60 * 60
        reader = self.service.reader
        # The reader has several threads: the chart queries run while the metrics are collected.
        metrics, health, rows, latency, recent, day = await asyncio.gather(
            self.service.metrics(), self.service.health(), reader.run(store_events.outcome_minutes, since),
            reader.run(jobs.latency_by_minute, since),
            reader.run(stats.rejections_by_source, now - ALERT_SECONDS),
            reader.run(stats.rejections_by_source, now - REJECTIONS_SECONDS),
        )
        metrics["store_ok"] = bool(health.get("ok"))
        # Calls with a failed try: a count over every job, so it is taken again only when a try failed or
        # the dead letters changed (a replay clears failures).
        failed_key = (metrics.get("failed"), metrics.get("dead"))
        if failed_key != self._failed_calls[0]:
            self._failed_calls = (failed_key, await reader.run(jobs.failed_calls))
        metrics["failed_calls"] = self._failed_calls[1]
        minutes = list(range(int(since), int(now // 60 * 60) + 60, 60))
        index = {m: i for i, m in enumerate(minutes)}
        by_outcome: dict[str, list[int]] = {}
        for minute, outcome, n in rows:
            if minute in index:
                by_outcome.setdefault(outcome, [0] * len(minutes))[index[minute]] += n
        level, verdict = health_verdict(metrics)
        snap = Snapshot(metrics, level, verdict, health_target(metrics), minutes, by_outcome, latency, now,
                        rejections=day, alerts=signature_alerts(recent), tunnel=tunnel,
                        gap_notice=dashboard_notice(metrics.get("gaps", []), self.config.sources, now))
        self._cached, self._cache_key = snap, key
        return snap

    # -- events and calls ------------------------------------------------------------
    async def events_page(
        self,
        search: str = "",
        *,
        source: str | None = None,
        event_type: str | None = None,
        outcome: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Newest first; ``search`` is a phone number or a call id. Pass ``next_before_id`` back for more."""
        filters = {"source": source or None, "event_type": event_type or None, "outcome": outcome or None,
                   "before_id": before_id, "limit": limit}
        search = search.strip()
        kind = wq.search_kind(search) if search else None
        page = None
        if kind == "phone":
            page = await self.service.reader.run(store_events.list_events, phone=search, **filters)
            if not page["events"] and before_id is None:
                page, kind = None, "call_id"  # long numeric call ids look like phone numbers
        if page is None:
            page = await self.service.reader.run(store_events.list_events, call_id=search or None, **filters)
        tests = await self.service.reader.run(store_events.sent_as_tests, [e["id"] for e in page["events"]])
        for event in page["events"]:
            event["test"] = event["id"] in tests
        return page | {"search_as": kind}

    async def event_types(self) -> list[str]:
        return await self.service.reader.run(store_events.distinct_types)

    async def event_detail(self, event_id: int) -> dict[str, Any] | None:
        event = await self.service.reader.run(store_events.get_event, event_id)
        if event is None:
            return None
        event["payload"] = pretty_payload(event.pop("body"), event.get("content_type") or "")
        event["headers"] = mask_headers(event.get("headers") or {})
        event["attempts"], event["job"] = [], None
        event["crm"], event["now"] = self.service.worker.state(), self.service.clock()
        event["test"] = bool((event.get("event") or {}).get("test"))
        if event.get("call_id"):
            event["job"] = await self.service.reader.run(jobs.job_for_call, event["source"], event["call_id"])
            event["attempts"] = await self.service.reader.run(jobs.delivery_log, event["source"], event["call_id"])
        return event

    async def calls_page(self, search: str = "", *, before: tuple[float, int] | None = None,
                         limit: int = 100) -> dict[str, Any]:
        """Calls (never test calls), most recently updated first; ``search`` is a phone number or a call
        id.  ``next_before`` is an opaque cursor: pass it back as ``before`` for the next page."""
        after = {"before": before[0], "before_rowid": before[1]} if before else {}
        search = search.strip()
        kind = wq.search_kind(search) if search else None
        calls = None
        if kind == "phone":
            calls = await self.service.reader.run(store_calls.list_calls, phone=search, limit=limit, tests=False, **after)
            if not calls and before is None:
                calls, kind = None, "call_id"  # long numeric call ids look like phone numbers
        if calls is None:
            calls = await self.service.reader.run(store_calls.list_calls, call_id=search or None, limit=limit, tests=False, **after)
        mark_incomplete(calls, self.config.sources, self.service.clock())
        more = len(calls) == limit
        cursor = (calls[-1]["updated_at"], calls[-1]["_rowid"]) if more and calls else None
        return {"calls": calls, "next_before": cursor, "search_as": kind}

    async def call_detail(self, source: str, call_id: str) -> dict[str, Any] | None:
        call = await self.service.reader.run(store_calls.get_call, source, call_id)
        if call is None:
            return None
        call["job"] = await self.service.reader.run(jobs.job_for_call, source, call_id)
        call["attempts"] = await self.service.reader.run(jobs.delivery_log, source, call_id)
        call["crm"], call["now"] = self.service.worker.state(), self.service.clock()
        return call

    # -- dead letters ------------------------------------------------------------------
    async def dead_letters(self) -> list[dict[str, Any]]:
        return await self.service.reader.run(jobs.list_dead)

    async def replay(self, job_ids: list[int] | None = None, *, all_dead: bool = False) -> list[int]:
        """Re-queue the given dead jobs (or every dead job); returns the ids to follow with job_progress."""
        if all_dead:
            ids = await self.service.reader.run(jobs.dead_ids)
            await self.service.worker.replay(dead=True)
            return ids
        if not job_ids:
            return []
        await self.service.worker.replay(job_ids=list(job_ids))
        return list(job_ids)

    async def job_progress(self, job_ids: list[int]) -> dict[str, int]:
        """How many of these jobs are done / dead / still waiting (pending or leased)."""
        states = await self.service.reader.run(jobs.states, job_ids) if job_ids else {}
        waiting = states.get("pending", 0) + states.get("leased", 0)
        return {"total": len(job_ids), "done": states.get("done", 0), "dead": states.get("dead", 0),
                "waiting": waiting}

    async def discard(self, job_ids: list[int]) -> int:
        return await self.service.worker.discard(list(job_ids))

    # -- export and checks ---------------------------------------------------------------
    async def export(self, request: ExportRequest, job: ExportJob, progress: Any = None) -> ExportOutcome:
        """Calls or events into a CSV / JSON Lines file on a thread; ``progress(done, total)`` on this loop."""
        return await window_export.run_export(self.config.store_target, request, job, progress)

    async def run_checks(self) -> list[Item]:
        """``callsync doctor``'s checklist with the settings in force, on a thread of its own."""
        return await asyncio.to_thread(asyncio.run, diagnose(replace(self.config, ghl=self.service.worker.settings)))

    # -- sources ---------------------------------------------------------------------
    def source_urls(self, name: str) -> tuple[str, str]:
        public = self.service.public_url()  # [server] public_url, else the tunnel's
        local = f"{self.service.hooks_url}/hooks/{name}" if self.service.hooks_port else (
            f"http://{self.config.server.host}:{self.config.server.port}/hooks/{name}")
        return local, (f"{public}/hooks/{name}" if public else "")

    def reconcile_state(self, name: str) -> dict[str, Any] | None:
        """A reconciling source's last run (``last_run``, ``last_ok``, ``last_error``) in this process."""
        return self.service.reconciler.last.get(name)

    def sources(self) -> list[SourceView]:
        views = []
        for name, source in sorted(self.config.sources.items()):
            local, public = self.source_urls(name)
            value, where = secrets.lookup(secrets.source_user(name))
            views.append(SourceView(
                config=replace(source),
                has_secret=bool(value),
                secret_env=secrets.env_name(secrets.source_user(name)),
                secret_from_env=where == "environment",
                local_url=local,
                public_url=public,
            ))
        return views

    def _store_secret(self, user: str, value: str) -> None:
        usable, message = secrets.keyring_usable()
        if not usable:
            raise SecretStoreUnavailable(f"{message} Set {secrets.env_name(user)} instead.")
        try:
            secrets.set_secret(user, value)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreUnavailable(
                f"The OS keyring refused the secret ({exc}). Set {secrets.env_name(user)} instead."
            ) from exc
        finally:
            secrets.invalidate_cache()

    def _apply(self, data: dict[str, Any]) -> None:
        """Make the running service use freshly written config data (sources, public URL, CRM)."""
        self.service.apply_config(parse_config(data, self.config.data_dir))
        self._cached = None

    def save_source(self, source: SourceConfig, secret: str | None = None,
                    auth_secret: str | None = None) -> SourceView:
        """Add or update a source (its secret, and the auth credential of a source that also has a
        signature, in the OS keyring); live at once."""
        parse_source(source.name, source.to_toml())  # ConfigError with the key at fault
        if secret:
            self._store_secret(secrets.source_user(source.name), secret.strip())
        if auth_secret and secrets.secret_users(source).get("auth") == secrets.auth_user(source.name):
            self._store_secret(secrets.auth_user(source.name), auth_secret.strip())
        self._apply(config_edit.set_source(self.config.config_path, source))
        return next(v for v in self.sources() if v.config.name == source.name)

    def remove_source(self, name: str) -> None:
        self._apply(config_edit.remove_source(self.config.config_path, name))
        for user in (secrets.source_user(name), secrets.source_user(name, previous=True),
                     secrets.auth_user(name), secrets.auth_user(name, previous=True)):
            try:
                secrets.delete_secret(user)
            except keyring.errors.KeyringError:
                pass  # no keyring: nothing was stored there
        secrets.invalidate_cache()

    def set_public_url(self, url: str) -> str:
        url = url.strip().rstrip("/")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("the public URL must start with https:// (or http://), "
                                  "e.g. https://abc.trycloudflare.com")
        self._apply(config_edit.set_server(self.config.config_path, public_url=url))
        return url

    async def send_test_event(self, name: str) -> SendResult:
        """Post a correctly signed sample to our own receiver, exactly as the sender would."""
        source = self.config.sources.get(name)
        if source is None:
            return SendResult(False, f"No source named {name!r}.")
        from connector.test_events import build_test_request, credentials_for_test

        credentials, missing = credentials_for_test(source)  # per kind and auth method; none for public keys
        if missing:
            return SendResult(False, missing)
        if source.kind == "twilio" and not self.service.public_url():
            return SendResult(False, "Twilio signs the public URL: switch the tunnel on or set the public URL first.")
        now = self.service.clock()
        call_id = ("CA" + uuid.uuid4().hex) if source.kind == "twilio" else f"test-{uuid.uuid4().hex[:12]}"
        path = f"/hooks/{name}"
        signed_url = (self.service.public_url() + path) if source.kind == "twilio" else ""
        # Telnyx, GoHighLevel and JWT public keys: signed with the receiver's own key, kept as a test.
        request = build_test_request(source, credentials, call_id, signed_url,
                                     self.service.receiver.self_signer.private_key, now)
        body, headers, query = request.body, request.headers, request.query
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
                async with http.post(self.service.hooks_url + path, data=body, headers=headers,
                                     params=query or None) as resp:
                    status = resp.status
                    try:
                        answer = await resp.json(content_type=None)
                    except ValueError:
                        answer = {"text": (await resp.text())[:200]}
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return SendResult(False, f"Could not reach the receiver at {self.service.hooks_url}: {exc}")
        answer = answer if isinstance(answer, dict) else {"answer": answer}
        if status == 200:
            event_id = answer.get("event_id")
            return SendResult(True, f"HTTP 200 {answer.get('status', '')}: event #{event_id}, call {call_id}",
                                   status, event_id, call_id, answer)
        reason = answer.get("reason") or ""
        error = answer.get("error") or answer.get("text") or ""
        return SendResult(False, f"HTTP {status} {reason}: {error}".strip(), status, None, call_id, answer)

    # -- CRM -------------------------------------------------------------------------
    def crm_settings(self) -> CrmView:
        settings: GhlSettings = self.service.worker.settings
        rules = [replace(r) for r in settings.rules]
        token, where = secrets.lookup(TOKEN_USER)
        return CrmView(
            settings=replace(settings, rules=[replace(r) for r in settings.rules]),
            has_token=bool(token),
            token_env=secrets.env_name(TOKEN_USER),
            token_from_env=where == "environment",
            auth_error=self.service.worker.state().get("auth_error"),
            rules=rules or [replace(r) for r in DEFAULT_RULES],
            rules_are_defaults=not rules,
        )

    def save_crm(
        self,
        location_id: str,
        *,
        base_url: str | None = None,
        callback_threshold: int | None = None,
        callback_exhausted_tag: str | None = None,
        active_dialing_tag: str | None = None,
        missing_contact: str | None = None,
    ) -> GhlSettings:
        values: dict[str, Any] = {"location_id": location_id.strip()}
        defaults = GhlSettings()
        for key, value in (("base_url", base_url), ("callback_threshold", callback_threshold),
                           ("callback_exhausted_tag", callback_exhausted_tag),
                           ("active_dialing_tag", active_dialing_tag), ("missing_contact", missing_contact)):
            if value is not None:
                value = value.strip() if isinstance(value, str) else value
                # Back to the default: drop the key instead of writing the default into the file.
                values[key] = None if value == getattr(defaults, key) and key not in self._crm_keys() else value
        self._apply(config_edit.set_crm(self.config.config_path, **values))
        return self.service.worker.settings

    def _crm_keys(self) -> set[str]:
        return set(self.config.ghl.explicit_keys)

    def save_rules(self, rules: list[Rule]) -> GhlSettings:
        self._apply(config_edit.set_rules(self.config.config_path, list(rules)))
        return self.service.worker.settings

    def set_token(self, token: str) -> None:
        token = token.strip()
        if not token:
            raise ValueError("the token is empty")
        self._store_secret(TOKEN_USER, token)
        self.service.worker.notify()
        self._cached = None

    async def test_crm(self) -> dict[str, Any]:
        """``GET /locations/{id}`` with the saved token: ``{"ok": bool, "verdict": str}``."""
        return await self.service.worker.check()

    # -- setup, keyring, autostart -------------------------------------------------------
    def keyring_status(self) -> KeyringStatus:
        usable, message = secrets.keyring_usable()
        return KeyringStatus(usable, message)

    def secret_variables(self) -> list[SecretVariable]:
        """The environment variables this configuration reads its secrets from, and which are set."""
        wanted = [(secrets.source_user(name), f"secret of source {name}") for name in sorted(self.config.sources)]
        wanted.append((TOKEN_USER, "GoHighLevel token"))
        out = []
        for user, what in wanted:
            name = secrets.env_name(user)
            out.append(SecretVariable(name, what, bool(os.environ.get(name))))
        return out

    def is_first_run(self) -> bool:
        return not self.config.sources and not self.service.worker.settings.configured

    def autostart_supported(self) -> tuple[bool, str]:
        return self.autostart.supported()

    def autostart_enabled(self) -> bool:
        return self.autostart.enabled()

    def set_autostart(self, enabled: bool) -> None:
        self.autostart.set(enabled)
