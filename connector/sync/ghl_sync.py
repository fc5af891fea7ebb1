"""GoHighLevel behind the CRM adapter interface (:class:`connector.sync.crm.base.CrmAdapter`).

Holds what is GoHighLevel's: the client (bound to a location, URL, token and timeouts; built again
when they change), the client-side rate limiter, the custom field ids, whether the token was
rejected.  A job becomes a :class:`~connector.sync.rules.Plan` (pure) carried out by
:class:`~connector.sync.steps.PlanRun`; jobs of one contact take the contact's lock in claim order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from connector import secrets
from connector.model import CallRecord
from connector.sync.crm.base import Attempt, CrmAdapter, SyncStore
from connector.sync.crm.errors import AuthError, CrmError
from connector.sync.crm.ghl import GhlClient
from connector.sync.crm.ratelimit import TokenBucket
from connector.sync.rules import PlanError, plan_for
from connector.sync.settings import GhlSettings
from connector.sync.steps import PlanRun

TOKEN_USER = "crm:ghl"


class GhlSync(CrmAdapter):
    name = "GHL"  # how pause reasons name it ("GHL rate limit")

    def __init__(self, settings: GhlSettings, *,
                 token_for: Callable[[], str | None] = lambda: secrets.cached_secret(TOKEN_USER)) -> None:
        self.settings = settings
        self.token_for = token_for
        self.limiter = TokenBucket(settings.rate_limit, daily_limit=settings.daily_limit)
        self.auth_error: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: GhlClient | None = None
        self._token: str | None = None
        self._field_ids: dict[str, str] | None = None
        self._field_ids_lock = asyncio.Lock()
        self._phone_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def apply_settings(self, settings: GhlSettings) -> None:
        old = self.settings
        self.settings = settings
        if (old.location_id, old.base_url, old.timeout_seconds, old.custom_field_value_key) != (
            settings.location_id, settings.base_url, settings.timeout_seconds, settings.custom_field_value_key
        ):
            self._client = None  # bound to a location, URL and timeouts: build a new one
            self._token = None
        if (old.rate_limit, old.daily_limit) != (settings.rate_limit, settings.daily_limit):
            self.limiter = TokenBucket(settings.rate_limit, daily_limit=settings.daily_limit)
            self._client = None

    def state(self) -> dict[str, Any]:
        return {"configured": self.settings.configured, "token": bool(self._token or self.token_for()),
                "auth_error": self.auth_error}

    def rejected(self, exc: Exception) -> str:
        self.auth_error = f"Token rejected (HTTP {getattr(exc, 'status', '?')}): fix your token"
        return self.auth_error

    def blocked(self) -> str | None:
        if not self.settings.configured:
            return "CRM not configured"
        token = self.token_for()
        if not token:
            return "no CRM token"
        if self._client is None or token != self._token:
            if token != self._token:
                self.auth_error = None  # a new token deserves a try
            assert self._session is not None, "start() first"
            self._token = token
            self._field_ids = None
            self._client = GhlClient(
                self._session, base_url=self.settings.base_url, token=token, location_id=self.settings.location_id,
                limiter=self.limiter, on_attempt=self._report, timeout=self.settings.timeout_seconds,
                custom_field_value_key=self.settings.custom_field_value_key,
            )
        return self.auth_error

    def _report(self, attempt: Attempt) -> None:
        self.on_attempt(attempt)

    async def sync(self, job: dict[str, Any], store: SyncStore) -> None:
        client = self._client
        assert client is not None, "blocked() said the adapter was ready"
        if job["call"] is None:
            raise PlanError(f"call {job['source']}/{job['call_id']} is not in the store")
        plan = plan_for(CallRecord.from_dict(job["call"]), self.settings)
        # Jobs of one contact run one after the other, in claim order: each reads the contact state
        # (tags, fields, counter) the previous one left.  The call came with the claim, so nothing is
        # awaited between the claim and taking the contact's lock (a read completing out of order
        # would let a later job of the contact overtake an earlier one).
        async with self._phone(plan.phone):
            await PlanRun(client, store, self.settings, job, plan, self._custom_field_ids).run()

    @contextlib.asynccontextmanager
    async def _phone(self, phone: str) -> AsyncIterator[None]:
        lock, users = self._phone_locks.get(phone, (asyncio.Lock(), 0))
        self._phone_locks[phone] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._phone_locks[phone]
            if users == 1:
                del self._phone_locks[phone]
            else:
                self._phone_locks[phone] = (lock, users - 1)

    async def _custom_field_ids(self) -> dict[str, str]:
        """Field key -> id, listed once (concurrent jobs wait for the one request in flight)."""
        async with self._field_ids_lock:
            if self._field_ids is None:
                assert self._client is not None
                definitions = [d for d in await self._client.list_custom_fields() if d.get("id")]
                ids = {d.get("fieldKey", ""): d["id"] for d in definitions}
                self._field_ids = ids | {key.removeprefix("contact."): i for key, i in ids.items()}
            return self._field_ids

    async def check(self) -> dict[str, Any]:
        return await check_crm(self.settings, self.token_for(), self._session)


async def check_crm(settings: GhlSettings, token: str | None, session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
    """``GET /locations/{id}`` with the token: a verdict for people."""
    if not settings.configured:
        return {"ok": False, "verdict": "No location id: set [crm.ghl] location_id in config.toml."}
    if not token:
        return {"ok": False, "verdict": "No token: run `callsync secret set crm:ghl` or set CALLSYNC_GHL_TOKEN."}
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        client = GhlClient(session, base_url=settings.base_url, token=token, location_id=settings.location_id,
                           timeout=min(settings.timeout_seconds, 15.0))
        location = await client.get_location()
    except AuthError as exc:
        return {"ok": False, "status": exc.status,
                "verdict": f"Token rejected (HTTP {exc.status}): create a new token with the "
                           "contacts and locations scopes, or check the location id."}
    except CrmError as exc:
        # No status: nothing came back (refused, unknown host, timeout); else GoHighLevel said no.
        if exc.status is None:
            return {"ok": False, "status": None, "verdict": f"Could not connect to {settings.base_url}: {exc.message}"}
        return {"ok": False, "status": exc.status, "verdict": f"GoHighLevel answered {exc.status}: {exc.message}"}
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return {"ok": False, "status": None,
                "verdict": f"Could not connect to {settings.base_url}: {exc or type(exc).__name__}"}
    finally:
        if own:
            await session.close()
    name = location.get("name") or location.get("id")
    return {"ok": True, "verdict": f"Connected to location {name!r} ({settings.location_id}).", "location": location}
