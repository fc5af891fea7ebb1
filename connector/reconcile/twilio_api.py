"""The two Twilio REST calls reconciliation needs, per Twilio's OpenAPI description (v2010):

- ``GET /2010-04-01/Accounts/{AccountSid}/Calls.json`` with the filter spelled as the spec does
  (``StartTime>``, i.e. ``StartTime>=2026-11-30T14:02:00Z`` once the query is read) and ``PageSize``,
  then every page through ``next_page_uri``;
- ``GET /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json`` for one call.

HTTP Basic auth: the account SID (or an API key SID) and the auth token (or the API key's secret).
A 429 waits for ``Retry-After``, a 5xx / timeout / cut connection is retried with backoff; a 401 or
403 is one sentence about the credentials.  Failures raise :class:`TwilioError` (one sentence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.twilio.com"
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)  # seconds before each retry of a 5xx or a failed connection
MAX_RETRY_AFTER = 120.0  # a longer Retry-After is capped: the next run picks it up anyway
PAGE_SIZE = 200  # the spec allows 1 to 1000


class TwilioError(Exception):
    """Twilio could not answer the question; ``str()`` is one sentence.  ``auth`` marks rejected credentials."""

    def __init__(self, message: str, *, status: int | None = None, auth: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.auth = auth


def spec_datetime(when: datetime) -> str:
    """A filter value as the spec's ``date-time`` (RFC 3339, UTC, whole seconds)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class TwilioClient:
    def __init__(self, account_sid: str, username: str, password: str, *, api_url: str = DEFAULT_API_URL,
                 timeout: float = 30.0, backoff: tuple[float, ...] = BACKOFF, page_size: int = PAGE_SIZE,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.account_sid = account_sid
        self.api_url = api_url.rstrip("/")
        self.auth = aiohttp.BasicAuth(username, password)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.backoff = backoff
        self.page_size = page_size
        self.sleep = sleep
        self.requests = 0  # sent, retries included
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TwilioClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout, auth=self.auth,
                                               headers={"Accept": "application/json"})
        return self._http

    @property
    def calls_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Calls"

    async def list_calls(self, started_since: datetime) -> AsyncIterator[dict[str, Any]]:
        """Every call that started at or after ``started_since``, page after page."""
        url: URL | None = URL(f"{self.api_url}{self.calls_path}.json").with_query(
            [("StartTime>", spec_datetime(started_since)), ("PageSize", str(self.page_size))])
        while url is not None:
            page = await self._get(url)
            if page is None:
                raise TwilioError(f"Twilio has no account {self.account_sid} (404): check account_sid.", status=404)
            for call in page.get("calls") or []:
                if isinstance(call, dict):
                    yield call
            following = page.get("next_page_uri")
            url = URL(self.api_url + following, encoded=True) if isinstance(following, str) and following else None

    async def get_call(self, sid: str) -> dict[str, Any] | None:
        """One call's resource; None when Twilio does not know it."""
        return await self._get(URL(f"{self.api_url}{self.calls_path}/{sid}.json"))

    async def _get(self, url: URL) -> dict[str, Any] | None:
        failures = 0
        while True:
            self.requests += 1
            try:
                async with self._session().get(url) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    text = await resp.text()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                reason = f"Twilio could not be reached ({type(exc).__name__}: {' '.join(str(exc).split())})"
                failures = await self._retry(failures, reason)
                continue
            if status == 200:
                return _json(text)
            if status == 404:
                return None
            if status in (401, 403):
                raise TwilioError(f"Twilio refused the credentials ({status}): check account_sid (and api_key_sid) "
                                  "and the token of keyring user twilio:<source> or the source's secret.",
                                  status=status, auth=True)
            if status == 429:
                wait = _seconds(retry_after, default=self.backoff[min(failures, len(self.backoff) - 1)])
                log.info("Twilio asked to slow down (429): waiting %.1f s", wait)
                await self.sleep(min(wait, MAX_RETRY_AFTER))
                continue  # waiting as asked is not a failure
            if status >= 500:
                failures = await self._retry(failures, f"Twilio answered {status}")
                continue
            try:
                message = _json(text).get("message")
            except TwilioError:
                message = None
            raise TwilioError(f"Twilio refused the request ({status}): {message or ' '.join(text.split())[:200]}",
                              status=status)

    async def _retry(self, failures: int, reason: str) -> int:
        if failures >= len(self.backoff):
            raise TwilioError(f"{reason}; gave up after {failures + 1} tries, the next run tries again.")
        log.info("%s; retrying in %.0f s", reason, self.backoff[failures])
        await self.sleep(self.backoff[failures])
        return failures + 1


def _seconds(value: str | None, *, default: float) -> float:
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return seconds if seconds >= 0 else default


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        data = json.loads(text)
    except ValueError:
        raise TwilioError("Twilio answered something that is not JSON.") from None
    return data if isinstance(data, dict) else {}
