"""GoHighLevel (LeadConnector) API v2 client for the call-outcome sync.

Only the handful of endpoints the sync needs, over an ``aiohttp.ClientSession``
owned by the caller.  Each method sends exactly one request and never retries:
errors come back as :mod:`connector.sync.crm.errors` exceptions and the caller
(the sync engine) decides what to do.  Every attempt, successful or not, is
reported to ``on_attempt`` so it can be logged with its ``traceId``.

Request shapes follow the official OpenAPI files (``apps/contacts.json`` and
``apps/locations.json`` of GoHighLevel/highlevel-api-docs); the tests check
every request against them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .base import Attempt
from .errors import (
    AuthError,
    CrmError,
    DailyLimitReached,
    PermanentError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from .ratelimit import Permit, TokenBucket
from .wire import (
    api_version_for,
    custom_field_value,
    error_message,
    int_header,
    parse_retry_after,
    seconds_until_utc_midnight,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"

BODY_LOG_LIMIT = 2000
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TRACE_HEADERS = ("traceId", "x-trace-id", "trace-id", "x-request-id")
# Fallback wait after a 429 that carries no usable header (GHL's burst window is 10 s).
DEFAULT_RATE_LIMIT_WAIT = 10.0


class _Response:
    __slots__ = ("status", "text", "data", "headers", "trace_id", "is_write")

    def __init__(
        self, status: int, text: str, data: Any, headers: Mapping[str, str], trace_id: str | None, is_write: bool
    ):
        self.is_write = is_write
        self.status = status
        self.text = text
        self.data = data
        self.headers = headers
        self.trace_id = trace_id


class GhlClient:
    """Thin async client for the GHL endpoints the sync uses (one location, one token)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token: str,
        location_id: str,
        limiter: TokenBucket | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        timeout: float = 30.0,
        custom_field_value_key: str = "field_value",
    ) -> None:
        if not token:
            raise ValueError("token is required")
        if not location_id:
            raise ValueError("location_id is required")
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.location_id = location_id
        self.limiter = limiter
        self._on_attempt = on_attempt
        self.timeout = timeout
        self.custom_field_value_key = custom_field_value_key

    # -- endpoints ----------------------------------------------------------

    async def get_location(self) -> dict:
        """``GET /locations/{locationId}``: the sub-account (use it to check the token)."""
        resp = await self._request(
            "location", "GET", f"/locations/{quote(self.location_id, safe='')}", expect=("location", dict)
        )
        return resp.data["location"]

    async def find_contact_by_phone(self, e164: str) -> dict | None:
        """``GET /contacts/search/duplicate?number=``: the contact holding this number, or None."""
        resp = await self._request(
            "lookup",
            "GET",
            "/contacts/search/duplicate",
            params={"locationId": self.location_id, "number": e164},
            expect=("contact", None),
        )
        contact = resp.data["contact"]
        return contact if isinstance(contact, dict) and contact else None

    async def upsert_contact(self, phone: str, **fields: Any) -> dict:
        """``POST /contacts/upsert``: create or update the contact for ``phone``.

        Returns the response body: ``{"new": bool, "contact": {...}, "traceId": ...}``.
        ``tags`` is refused (it would overwrite every tag); use :meth:`add_tags`.
        """
        if "tags" in fields:
            raise ValueError("upsert_contact never sends tags (they overwrite all tags); use add_tags")
        if "locationId" in fields:
            raise ValueError("locationId is set by the client")
        body: dict[str, Any] = {"locationId": self.location_id, "phone": phone}
        for key, value in fields.items():
            if value is None:
                continue
            if key == "customFields":
                value = self._custom_fields_payload(value)
            body[key] = value
        resp = await self._request("upsert", "POST", "/contacts/upsert", json_body=body, expect=("contact", dict))
        return resp.data

    async def get_contact(self, contact_id: str) -> dict:
        """``GET /contacts/{id}``."""
        resp = await self._request("contact", "GET", self._contact_path(contact_id), expect=("contact", dict))
        return resp.data["contact"]

    async def add_note(self, contact_id: str, body: str, *, user_id: str | None = None) -> dict:
        """``POST /contacts/{id}/notes``: returns the note."""
        payload: dict[str, Any] = {"body": body}
        if user_id:
            payload["userId"] = user_id
        resp = await self._request(
            "note", "POST", self._contact_path(contact_id, "notes"), json_body=payload, expect=("note", dict)
        )
        return resp.data["note"]

    async def list_notes(self, contact_id: str) -> list[dict]:
        """``GET /contacts/{id}/notes``."""
        resp = await self._request(
            "notes.list", "GET", self._contact_path(contact_id, "notes"), expect=("notes", list)
        )
        return resp.data["notes"]

    async def add_tags(self, contact_id: str, tags: Iterable[str]) -> list[str]:
        """``POST /contacts/{id}/tags``: returns the tags reported by GHL."""
        resp = await self._request(
            "tags.add",
            "POST",
            self._contact_path(contact_id, "tags"),
            json_body={"tags": list(tags)},
            expect=("tags", list),
        )
        return resp.data["tags"]

    async def remove_tags(self, contact_id: str, tags: Iterable[str]) -> list[str]:
        """``DELETE /contacts/{id}/tags`` (JSON body): returns the tags reported by GHL."""
        resp = await self._request(
            "tags.remove",
            "DELETE",
            self._contact_path(contact_id, "tags"),
            json_body={"tags": list(tags)},
            expect=("tags", list),
        )
        return resp.data["tags"]

    async def list_custom_fields(self) -> list[dict]:
        """``GET /locations/{locationId}/customFields?model=contact``."""
        resp = await self._request(
            "fields.list",
            "GET",
            f"/locations/{quote(self.location_id, safe='')}/customFields",
            params={"model": "contact"},
            expect=("customFields", list),
        )
        return resp.data["customFields"]

    async def update_custom_fields(self, contact_id: str, values: Iterable[tuple[str, Any]]) -> dict:
        """``PUT /contacts/{id}`` with ``customFields``: returns the updated contact."""
        payload = {"customFields": self._custom_fields_payload(values)}
        resp = await self._request(
            "fields", "PUT", self._contact_path(contact_id), json_body=payload, expect=("contact", dict)
        )
        return resp.data["contact"]

    async def create_task(self, contact_id: str, title: str, body: str, due_date_iso: str) -> dict:
        """``POST /contacts/{id}/tasks`` (not completed): returns the task."""
        payload = {"title": title, "body": body, "dueDate": due_date_iso, "completed": False}
        resp = await self._request(
            "task", "POST", self._contact_path(contact_id, "tasks"), json_body=payload, expect=("task", dict)
        )
        return resp.data["task"]

    async def list_tasks(self, contact_id: str) -> list[dict]:
        """``GET /contacts/{id}/tasks``."""
        resp = await self._request(
            "tasks.list", "GET", self._contact_path(contact_id, "tasks"), expect=("tasks", list)
        )
        return resp.data["tasks"]

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _contact_path(contact_id: str, *rest: str) -> str:
        if not contact_id:
            raise ValueError("contact_id is required")
        return "/".join(["/contacts", quote(contact_id, safe=""), *rest])

    def _custom_fields_payload(self, values: Iterable[Any]) -> list[dict[str, Any]]:
        items = []
        for item in values:
            if isinstance(item, Mapping):
                items.append(dict(item))
                continue
            field_id, value = item
            items.append({"id": field_id, self.custom_field_value_key: custom_field_value(value)})
        return items

    @staticmethod
    def _check_shape(resp: _Response, expect: tuple[str, type | None]) -> None:
        """A 2xx whose JSON lacks the expected member: unknown outcome for a write."""
        key, kind = expect
        data = resp.data
        ok = isinstance(data, dict) and key in data
        if ok and kind is not None:
            ok = isinstance(data[key], kind)
        if ok:
            return
        message = f"unexpected response shape (no {key!r} {kind.__name__ if kind else 'member'})"
        if resp.is_write:
            raise UnknownOutcome(message, status=resp.status, body=resp.text, trace_id=resp.trace_id)
        raise PermanentError(message, status=resp.status, body=resp.text, trace_id=resp.trace_id)

    def _headers(self, path: str, has_body: bool) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "Version": api_version_for(path),
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        return headers

    def _report(self, attempt: Attempt) -> None:
        if self._on_attempt is None:
            return
        try:
            self._on_attempt(attempt)
        except Exception:  # a logging callback must never break a request
            log.exception("on_attempt callback failed")

    async def _acquire(self) -> Permit | None:
        if self.limiter is None:
            return None
        try:
            # An exhausted daily budget is never waited out here: the caller pauses and retries later.
            return await self.limiter.acquire(wait=False)
        except DailyLimitReached as exc:
            raise RateLimited(
                "daily request limit reached (local budget)",
                retry_after_seconds=exc.retry_after_seconds,
                daily_exhausted=True,
                status=None,
            ) from exc

    async def _request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        expect: tuple[str, type | None] | None = None,
    ) -> _Response:
        has_body = json_body is not None
        data = json.dumps(json_body, separators=(",", ":")).encode() if has_body else None
        headers = self._headers(path, has_body)
        permit = await self._acquire()
        started = time.monotonic()
        status: int | None = None
        text = ""
        trace_id: str | None = None
        error: str | None = None
        is_write = method in _WRITE_METHODS
        try:
            try:
                async with self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    status = response.status
                    raw = await response.read()
                    resp_headers = response.headers
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                error = f"timeout after {self.timeout:g}s"
                cls = UnknownOutcome if is_write else TransientError
                raise cls(f"{method} {path}: {error}", status=status) from exc
            except aiohttp.ClientConnectorError as exc:
                # Could not connect at all: nothing was sent.
                error = f"connection failed: {exc}"
                raise TransientError(f"{method} {path}: {error}") from exc
            except aiohttp.ClientConnectionError as exc:
                error = f"connection error: {exc.__class__.__name__}: {exc}"
                cls = UnknownOutcome if is_write else TransientError
                raise cls(f"{method} {path}: {error}", status=status) from exc
            except aiohttp.ClientError as exc:
                error = f"client error: {exc.__class__.__name__}: {exc}"
                cls = UnknownOutcome if is_write else TransientError
                raise cls(f"{method} {path}: {error}", status=status) from exc
            except asyncio.CancelledError:
                error = "cancelled"
                raise
            finally:
                if permit is not None:
                    permit.release()

            text = raw.decode("utf-8", errors="replace")
            parsed: Any = None
            if text.strip():
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("traceId"), str):
                trace_id = parsed["traceId"]
            if trace_id is None:
                for name in _TRACE_HEADERS:
                    if resp_headers.get(name):
                        trace_id = resp_headers[name]
                        break
            self._note_rate_headers(resp_headers)
            resp = _Response(status, text, parsed, resp_headers, trace_id, is_write)
            try:
                self._raise_for_status(method, path, resp, is_write)
                if expect is not None:
                    self._check_shape(resp, expect)
            except CrmError as exc:
                error = str(exc)
                raise
            return resp
        finally:
            self._report(
                Attempt(
                    kind=kind,
                    method=method,
                    path=path,
                    status=status,
                    response_body=text[:BODY_LOG_LIMIT],
                    trace_id=trace_id,
                    duration_ms=round((time.monotonic() - started) * 1000.0, 3),
                    error=error,
                )
            )

    def _note_rate_headers(self, headers: Mapping[str, str]) -> None:
        """``X-RateLimit-Daily-Remaining: 0`` on any answer: hold every request until the daily reset."""
        daily_remaining = int_header(headers, "X-RateLimit-Daily-Remaining")
        if daily_remaining is not None and daily_remaining <= 0 and self.limiter is not None:
            self.limiter.pause_for(self._daily_reset_seconds(headers), daily=True)

    @staticmethod
    def _daily_reset_seconds(headers: Mapping[str, str]) -> float:
        reset_ms = int_header(headers, "X-RateLimit-Daily-Reset")
        if reset_ms is not None and reset_ms >= 0:
            return reset_ms / 1000.0
        return seconds_until_utc_midnight()

    def _raise_for_status(self, method: str, path: str, resp: _Response, is_write: bool) -> None:
        status = resp.status
        where = f"{method} {path}"
        if 200 <= status < 300:
            if resp.data is None or not isinstance(resp.data, (dict, list)):
                msg = f"{where}: HTTP {status} with an empty or unparseable body"
                if is_write:
                    raise UnknownOutcome(msg + "; the write may have been applied", status=status, body=resp.text)
                raise TransientError(msg, status=status, body=resp.text)
            return
        body = resp.text[:BODY_LOG_LIMIT]
        message = f"{where}: {error_message(resp.data, resp.text[:200] or 'no body')}"
        if status == 429:
            headers = resp.headers
            daily_remaining = int_header(headers, "X-RateLimit-Daily-Remaining")
            daily = daily_remaining is not None and daily_remaining <= 0
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if daily:
                wait = retry_after if retry_after is not None else self._daily_reset_seconds(headers)
            elif retry_after is not None:
                wait = retry_after
            else:
                interval = int_header(headers, "X-RateLimit-Interval-Milliseconds")
                wait = interval / 1000.0 if interval is not None and interval > 0 else DEFAULT_RATE_LIMIT_WAIT
            if self.limiter is not None:
                self.limiter.pause_for(wait, daily=daily)
            raise RateLimited(
                message,
                retry_after_seconds=wait,
                daily_exhausted=daily,
                status=status,
                body=body,
                trace_id=resp.trace_id,
            )
        if status in (401, 403):
            raise AuthError(f"{message} (fix your token)", status=status, body=body, trace_id=resp.trace_id)
        if status in (408, 425) or status >= 500:
            raise TransientError(message, status=status, body=body, trace_id=resp.trace_id)
        if 400 <= status < 500:
            raise PermanentError(message, status=status, body=body, trace_id=resp.trace_id)
        # 1xx/3xx: not expected from this API
        raise PermanentError(message, status=status, body=body, trace_id=resp.trace_id)
