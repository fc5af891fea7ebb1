"""What the window shows and does, over a running :class:`connector.app.Service`.

Qt-free: the views in ``gui/`` call these methods and render the plain data
they return.  Reads go through the store reader's threads (``await
service.reader.run(...)``), so the event loop that also serves the webhooks is
never blocked by SQL.  Config edits go through :mod:`connector.config_edit`
and are applied to the running service at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import shutil
import sqlite3
import sys
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import keyring.errors
from standardwebhooks import Webhook

from connector import config_edit, secrets
from connector.config import ConfigError, SourceConfig, parse_config, parse_source
from connector.receiver.signatures import twilio_signature
from connector.store import reader as q
from connector.sync import queries as sq
from connector.sync.settings import DEFAULT_RULES, GhlSettings, Rule, parse_ghl
from connector.sync.worker import TOKEN_USER

CHART_HOURS = 3
SNAPSHOT_MAX_AGE = 30.0  # seconds a cached snapshot may be reused while nothing changed
STALE_PENDING_SECONDS = 600
TEST_PHONE = "+15555550100"  # a fictional number (555-01xx)


# -- health ---------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{round(seconds / 86400)} d"


def health_verdict(metrics: dict[str, Any]) -> tuple[str, str]:
    """``(level, one line)`` for the dashboard, window and tray; level is ok | warn | error.

    First match wins: things only a person can fix, then permanent failures, then waiting work.
    """
    crm = metrics.get("crm") or {}
    pending = int(metrics.get("pending") or 0)
    dead = int(metrics.get("dead") or 0)
    retrying = int(metrics.get("retrying") or 0)
    oldest = float(metrics.get("oldest_pending_age_seconds") or 0)
    if metrics.get("store_ok") is False:
        return "error", "Store unavailable — check the data dir and free disk space"
    if not crm.get("configured"):
        return "warn", "CRM not configured — open CRM"
    if crm.get("auth_error"):
        return "error", "Token rejected — open CRM settings"
    if not crm.get("token"):
        return "error", "No CRM token — open CRM"
    if crm.get("pause_reason") and pending:
        return "warn", f"{pending} waiting — {crm['pause_reason']}"
    if dead:
        return "error", f"{_plural(dead, 'call')} failed to sync — open Dead letters"
    if retrying:
        return "warn", f"{pending} waiting — {_plural(retrying, 'call')} retrying after errors"
    if pending and oldest >= STALE_PENDING_SECONDS:
        return "warn", f"{pending} waiting — oldest {format_age(oldest)}"
    if pending:
        return "ok", f"Syncing — {pending} waiting"
    return "ok", "All synced"


def health_target(metrics: dict[str, Any]) -> str | None:
    """The tab that fixes what :func:`health_verdict` complains about (crm | dead_letters | None)."""
    crm = metrics.get("crm") or {}
    if not crm.get("configured") or crm.get("auth_error") or not crm.get("token"):
        return "crm"
    if metrics.get("dead"):
        return "dead_letters"
    return None


# -- secrets in what the inspector shows -------------------------------------------

MASK = "••••••••"
_SECRET_NAME = re.compile(r"sig|secret|token|auth|passw|api[-_]?key|cookie|session|credential", re.I)
_SECRET_VALUE = re.compile(
    r"^(?:(?:bearer|basic|token)\s+\S+|whsec_\S+|sk_\S+|pit-[0-9a-f-]{20,}|v1,\S+|(?:sha256=)?[0-9a-f]{40,}"
    r"|[A-Za-z0-9+/_-]{32,}={0,2})$",
    re.I,
)


def looks_secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.match(value.strip()))


def mask_headers(headers: dict[str, Any]) -> dict[str, str]:
    """Headers as stored (the receiver already redacted signatures), plus anything that looks secret."""
    out = {}
    for name, value in headers.items():
        text = str(value)
        out[name] = text if text == "[redacted]" or not looks_secret(name, text) else MASK
    return out


def _mask_payload(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if isinstance(v, str) and _SECRET_NAME.search(str(k)) else _mask_payload(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_payload(v) for v in value]
    return value


def pretty_payload(body: str, content_type: str) -> str:
    """The request body for people: indented JSON, or one ``name = value`` line per form field."""
    if "x-www-form-urlencoded" in (content_type or ""):
        pairs = parse_qsl(body, keep_blank_values=True)
        return "\n".join(f"{k} = {MASK if _SECRET_NAME.search(k) else v}" for k, v in pairs)
    try:
        return json.dumps(_mask_payload(json.loads(body)), indent=2, ensure_ascii=False)
    except ValueError:
        return body


# -- search -----------------------------------------------------------------------

_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]+$")


def search_kind(text: str) -> str:
    """What a search box entry probably is: ``phone`` (7+ digits) or ``call_id``."""
    text = text.strip()
    digits = sum(c.isdigit() for c in text)
    return "phone" if _PHONE_CHARS.match(text) and digits >= 7 else "call_id"


# -- start on login -----------------------------------------------------------------

_DESKTOP_RESERVED = re.compile(r'[\s"\'\\><~|&;$*?#()`]')


def _desktop_quote(arg: str) -> str:
    """Quote one argument of a desktop entry's ``Exec`` key (Desktop Entry Specification)."""
    if not arg or _DESKTOP_RESERVED.search(arg):
        escaped = re.sub(r'(["`$\\])', r"\\\1", arg)
        return f'"{escaped}"'
    return arg


def default_launch_command(data_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("callsync")
    found = str(script) if script.exists() else shutil.which("callsync")
    base = [found] if found else [sys.executable, "-m", "connector"]
    return [*base, "gui", "--data-dir", str(data_dir)]


def default_autostart_path() -> Path:
    import os

    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "autostart" / "callsync.desktop"


class Autostart:
    """"Start on login": an XDG autostart entry on Linux; other systems are not supported yet."""

    def __init__(self, command: list[str], path: Path | None = None, platform: str | None = None) -> None:
        self.command = command
        self.path = path or default_autostart_path()
        self.platform = platform or sys.platform

    def supported(self) -> tuple[bool, str]:
        if self.platform.startswith("linux") or "bsd" in self.platform:
            return True, f"Starts callsync when you log in ({self.path})."
        name = {"darwin": "macOS", "win32": "Windows"}.get(self.platform, self.platform)
        return False, f"Start on login is not supported on {name} yet: add callsync to your login items yourself."

    def enabled(self) -> bool:
        return self.supported()[0] and self.path.exists()

    def desktop_entry(self) -> str:
        return (
            "[Desktop Entry]\n"
            "Type=Application\n"
            "Name=callsync\n"
            "Comment=Call events from your dialer into your CRM\n"
            f"Exec={' '.join(_desktop_quote(a) for a in self.command)}\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n"
        )

    def set(self, enabled: bool) -> None:
        ok, message = self.supported()
        if not ok:
            raise NotImplementedError(message)
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.desktop_entry(), encoding="utf-8")
        else:
            self.path.unlink(missing_ok=True)


# -- results ------------------------------------------------------------------------


class SecretStoreUnavailable(RuntimeError):
    """No usable OS keyring: the message names the environment variable to use instead."""


@dataclass(slots=True)
class KeyringStatus:
    usable: bool
    message: str
    hint: str = (
        "For a source named dialer that is CALLSYNC_SECRET_DIALER. callsync never falls back to a plain "
        "file; restart it after setting the variables."
    )


@dataclass(slots=True)
class Snapshot:
    metrics: dict[str, Any]
    level: str
    verdict: str
    target: str | None
    minutes: list[int]  # start of each minute (unix seconds) of the chart window
    by_outcome: dict[str, list[int]]  # outcome ("" = not a final event) -> events per minute
    latency: list[dict[str, Any]]  # {"minute", "p50", "p95"} in ms
    taken_at: float


@dataclass(slots=True)
class SourceView:
    config: SourceConfig
    has_secret: bool
    secret_env: str
    local_url: str
    public_url: str  # "" until [server] public_url is set


@dataclass(slots=True)
class SendResult:
    ok: bool
    message: str
    status: int | None = None
    event_id: int | None = None
    call_id: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CrmView:
    settings: GhlSettings
    has_token: bool
    token_env: str
    rules: list[Rule]  # what the editor shows: the file's rules, else the built-in defaults
    rules_are_defaults: bool


# -- queries only the window needs ----------------------------------------------------


def outcome_minutes(conn: sqlite3.Connection, since: float) -> list[tuple[int, str, int]]:
    return conn.execute(
        "SELECT CAST(received_at / 60 AS INTEGER) * 60 AS minute, COALESCE(outcome, '') AS outcome, COUNT(*) "
        "FROM events WHERE received_at >= ? GROUP BY minute, outcome",
        (since,),
    ).fetchall()


def distinct_event_types(conn: sqlite3.Connection) -> list[str]:
    """Hop from one value to the next along the events_type index: ~0.3 ms at a million events,
    where ``SELECT DISTINCT`` reads the whole index (~60 ms) on a store without ANALYZE statistics."""
    return [r[0] for r in conn.execute(
        "WITH RECURSIVE t(v) AS (SELECT MIN(event_type) FROM events UNION ALL "
        "SELECT (SELECT MIN(event_type) FROM events WHERE event_type > t.v) FROM t WHERE t.v IS NOT NULL) "
        "SELECT v FROM t WHERE v IS NOT NULL"
    )]


def dead_job_ids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'dead' ORDER BY id")]


def job_states(conn: sqlite3.Connection, job_ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        for status, n in conn.execute(
            f"SELECT status, COUNT(*) FROM jobs WHERE id IN ({','.join('?' for _ in chunk)}) GROUP BY status", chunk
        ):
            counts[status] = counts.get(status, 0) + n
    return counts


# -- test events ----------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_payload(source: SourceConfig, call_id: str, now: float) -> tuple[bytes, str]:
    """A realistic 'call started' event in the source's format (never an outcome: no CRM write)."""
    fmt = source.format if source.format != "auto" else {"standard": "standard", "twilio": "twilio"}.get(
        source.kind, "unlimcall"
    )
    if fmt == "twilio":
        form = {
            "CallSid": call_id, "AccountSid": "AC" + "0" * 32, "From": "+15005550006", "To": TEST_PHONE,
            "Direction": "outbound-api", "CallStatus": "initiated", "SequenceNumber": "0",
            "Timestamp": datetime.fromtimestamp(now, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "ApiVersion": "2010-04-01", "CallbackSource": "call-progress-events",
        }
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    if fmt == "standard":
        payload: dict[str, Any] = {"type": "call.ringing", "timestamp": _iso(now), "data": {
            "call_id": call_id, "from": "+15005550006", "to": TEST_PHONE, "direction": "outbound",
            "agent": "callsync-test"}}
    elif fmt == "dialercx":
        payload = {"event": "call.started", "timestamp": _iso(now), "data": {
            "call_id": call_id, "agent": "callsync-test", "phone_number": TEST_PHONE, "campaign": "test"}}
    else:
        payload = {"event": "call.initiated", "call_uuid": call_id, "from": "+15005550006", "to": TEST_PHONE,
                   "direction": "outbound", "initiated_at": _iso(now), "seat_id": "callsync-test"}
    return json.dumps(payload, separators=(",", ":")).encode(), "application/json"


def sign_request(source: SourceConfig, secret: str, body: bytes, content_type: str, url: str,
                 now: float, *, msg_id: str | None = None) -> dict[str, str]:
    """The headers the sender would add: HMAC-SHA256, Standard Webhooks or Twilio, per the source's kind.

    ``url`` is the public URL Twilio signs; ``msg_id`` the Standard Webhooks message id (a retry reuses it).
    """
    headers = {"Content-Type": content_type, "User-Agent": "callsync-test-event"}
    if source.kind == "standard":
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        when = datetime.fromtimestamp(int(now), tz=timezone.utc)
        return headers | {"webhook-id": msg_id, "webhook-timestamp": str(int(now)),
                          "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode())}
    if source.kind == "twilio":
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(body.decode(), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        return headers | {"X-Twilio-Signature": twilio_signature(secret, url, params)}
    content = body
    if source.timestamp_header:
        headers[source.timestamp_header] = str(int(now))
        content = f"{int(now)}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    headers[source.signature_header] = digest.hex() if source.signature_encoding == "hex" else (
        base64.b64encode(digest).decode())
    return headers


# -- the facade -----------------------------------------------------------------------


class Facade:
    def __init__(self, service: Any, *, autostart: Autostart | None = None) -> None:
        self.service = service
        self.autostart = autostart or Autostart(default_launch_command(service.config.data_dir))
        self._cached: Snapshot | None = None
        self._cache_key: tuple[Any, ...] | None = None

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
        key = (self.data_version(), self.service.writer.depth, tuple(sorted(worker_state.items())))
        cached = self._cached
        if not fresh and cached and key == self._cache_key and now - cached.taken_at < SNAPSHOT_MAX_AGE:
            return cached
        since = (now - CHART_HOURS * 3600) // 60 * 60
        reader = self.service.reader
        # The reader has several threads: the chart queries run while the metrics are collected.
        metrics, health, rows, latency = await asyncio.gather(
            self.service.metrics(), self.service.health(), reader.run(outcome_minutes, since),
            reader.run(sq.latency_by_minute, since),
        )
        metrics["store_ok"] = bool(health.get("ok"))
        minutes = list(range(int(since), int(now // 60 * 60) + 60, 60))
        index = {m: i for i, m in enumerate(minutes)}
        by_outcome: dict[str, list[int]] = {}
        for minute, outcome, n in rows:
            if minute in index:
                by_outcome.setdefault(outcome, [0] * len(minutes))[index[minute]] += n
        level, verdict = health_verdict(metrics)
        snap = Snapshot(metrics, level, verdict, health_target(metrics), minutes, by_outcome, latency, now)
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
        kind = search_kind(search) if search else None
        if kind == "phone":
            page = await self.service.reader.run(q.list_events, phone=search, **filters)
            if page["events"] or before_id is not None:
                return page | {"search_as": "phone"}
            kind = "call_id"  # long numeric call ids look like phone numbers
        page = await self.service.reader.run(q.list_events, call_id=search or None, **filters)
        return page | {"search_as": kind}

    async def event_types(self) -> list[str]:
        return await self.service.reader.run(distinct_event_types)

    async def event_detail(self, event_id: int) -> dict[str, Any] | None:
        event = await self.service.reader.run(q.get_event, event_id)
        if event is None:
            return None
        event["payload"] = pretty_payload(event.pop("body"), event.get("content_type") or "")
        event["headers"] = mask_headers(event.get("headers") or {})
        event["attempts"], event["job"] = [], None
        if event.get("call_id"):
            event["job"] = await self.service.reader.run(sq.job_for_call, event["source"], event["call_id"])
            event["attempts"] = await self.service.reader.run(sq.delivery_log, event["source"], event["call_id"])
        return event

    async def calls_page(self, *, before: tuple[float, int] | None = None, limit: int = 100) -> dict[str, Any]:
        """``next_before`` is an opaque cursor: pass it back as ``before`` for the next page."""
        after = {"before": before[0], "before_rowid": before[1]} if before else {}
        calls = await self.service.reader.run(q.list_calls, limit=limit, **after)
        more = len(calls) == limit
        cursor = (calls[-1]["updated_at"], calls[-1]["_rowid"]) if more and calls else None
        return {"calls": calls, "next_before": cursor}

    async def call_detail(self, source: str, call_id: str) -> dict[str, Any] | None:
        call = await self.service.reader.run(q.get_call, source, call_id)
        if call is None:
            return None
        call["job"] = await self.service.reader.run(sq.job_for_call, source, call_id)
        call["attempts"] = await self.service.reader.run(sq.delivery_log, source, call_id)
        return call

    # -- dead letters ------------------------------------------------------------------
    async def dead_letters(self) -> list[dict[str, Any]]:
        return await self.service.reader.run(sq.list_dead)

    async def replay(self, job_ids: list[int] | None = None, *, all_dead: bool = False) -> list[int]:
        """Re-queue the given dead jobs (or every dead job); returns the ids to follow with job_progress."""
        if all_dead:
            ids = await self.service.reader.run(dead_job_ids)
            await self.service.worker.replay(dead=True)
            return ids
        if not job_ids:
            return []
        await self.service.worker.replay(job_ids=list(job_ids))
        return list(job_ids)

    async def job_progress(self, job_ids: list[int]) -> dict[str, int]:
        """How many of these jobs are done / dead / still waiting (pending or leased)."""
        states = await self.service.reader.run(job_states, job_ids) if job_ids else {}
        waiting = states.get("pending", 0) + states.get("leased", 0)
        return {"total": len(job_ids), "done": states.get("done", 0), "dead": states.get("dead", 0),
                "waiting": waiting}

    async def discard(self, job_ids: list[int]) -> int:
        return await self.service.worker.discard(list(job_ids))

    # -- sources ---------------------------------------------------------------------
    def source_urls(self, name: str) -> tuple[str, str]:
        public = self.config.server.public_url
        local = f"{self.service.hooks_url}/hooks/{name}" if self.service.hooks_port else (
            f"http://{self.config.server.host}:{self.config.server.port}/hooks/{name}")
        return local, (f"{public}/hooks/{name}" if public else "")

    def sources(self) -> list[SourceView]:
        views = []
        for name, source in sorted(self.config.sources.items()):
            local, public = self.source_urls(name)
            views.append(SourceView(
                config=replace(source),
                has_secret=bool(secrets.get_secret(secrets.source_user(name))),
                secret_env=secrets.env_name(secrets.source_user(name)),
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
        fresh = parse_config(data, self.config.data_dir)
        live = self.config.sources
        for name in [n for n in live if n not in fresh.sources]:
            del live[name]
        live.update(fresh.sources)
        self.config.server.public_url = fresh.server.public_url
        self.config.raw = data
        settings = parse_ghl(data)
        self.service.ghl = settings
        self.service.worker.apply_settings(settings)
        self._cached = None

    def save_source(self, source: SourceConfig, secret: str | None = None) -> SourceView:
        """Add or update a source (and its secret, in the OS keyring); live at once."""
        parse_source(source.name, source.to_toml())  # ConfigError with the key at fault
        if secret:
            self._store_secret(secrets.source_user(source.name), secret.strip())
        self._apply(config_edit.set_source(self.config.config_path, source))
        return next(v for v in self.sources() if v.config.name == source.name)

    def remove_source(self, name: str) -> None:
        self._apply(config_edit.remove_source(self.config.config_path, name))
        for user in (secrets.source_user(name), secrets.source_user(name, previous=True)):
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
        secret = secrets.get_secret(secrets.source_user(name))
        if not secret:
            return SendResult(False, f"No secret for {name!r} yet: enter one and save, or set "
                                          f"{secrets.env_name(secrets.source_user(name))}.")
        if source.kind == "twilio" and not self.config.server.public_url:
            return SendResult(False, "Twilio signs the public URL: set the public URL first.")
        now = self.service.clock()
        call_id = ("CA" + uuid.uuid4().hex) if source.kind == "twilio" else f"test-{uuid.uuid4().hex[:12]}"
        body, content_type = sample_payload(source, call_id, now)
        path = f"/hooks/{name}"
        signed_url = (self.config.server.public_url + path) if source.kind == "twilio" else ""
        headers = sign_request(source, secret, body, content_type, signed_url, now)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
                async with http.post(self.service.hooks_url + path, data=body, headers=headers) as resp:
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
        return CrmView(
            settings=replace(settings, rules=[replace(r) for r in settings.rules]),
            has_token=bool(secrets.get_secret(TOKEN_USER)),
            token_env=secrets.env_name(TOKEN_USER),
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
        table = (self.config.raw.get("crm") or {}).get("ghl") or {}
        return set(table)

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

    def is_first_run(self) -> bool:
        return not self.config.sources and not self.service.worker.settings.configured

    def autostart_supported(self) -> tuple[bool, str]:
        return self.autostart.supported()

    def autostart_enabled(self) -> bool:
        return self.autostart.enabled()

    def set_autostart(self, enabled: bool) -> None:
        self.autostart.set(enabled)
