"""In-memory GoHighLevel API for tests, checked against the official OpenAPI files.

``FakeGhl`` is an aiohttp application serving the subset of the GHL v2 API the
sync uses (contacts, duplicate lookup, upsert, notes, tags, custom fields,
tasks, location).  Every request is validated with openapi-core against the
spec files copied in ``ghl_openapi/`` (path, method, required parameters,
``Version`` enum, bearer security, request body schema).  A request that fails
is answered 422 (401 for a missing/malformed ``Authorization``, 404 for a
path or method the spec does not have) and its message is appended to
``fake.violations``; the ``ghl`` fixture fails the test when any remain.

Besides the state (``contacts``, ``notes``, ``tasks``, ``custom_fields``) the
fake enforces a per-location sliding-window rate limit plus a daily budget,
sends GHL's rate-limit headers on every response, records every request in
``fake.requests`` and injects faults on demand::

    fake.inject("note", Fault.status(500), Fault.empty_201())
    fake.inject(r"/tags$", Fault.timeout(2.0))          # the write lands after the client gave up
    fake.inject("fields", Fault.none(), Fault.disconnect(perform=True))  # 2nd PUT: applied, then cut
    await fake.quiet()                                  # every delayed write has landed
    fake.fail_all(503); ...; fake.heal()
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import math
import re
import secrets
import string
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.contrib.aiohttp import AIOHTTPOpenAPIWebRequest
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.request.exceptions import SecurityValidationError

from connector.sync.crm.ratelimit import parse_rate

SPEC_DIR = Path(__file__).with_name("ghl_openapi")
SPEC_SERVER = "https://services.leadconnectorhq.com"
# First path segment -> spec file.
SPEC_FILES = {
    "contacts": "apps/contacts.json",
    "locations": "apps/locations.json",
    "conversations": "apps/conversations.json",
}

DEFAULT_TOKEN = "pit-11111111-2222-3333-4444-555555555555"
DEFAULT_LOCATION_ID = "ve9EPM428h8vShlRW1KT"

KINDS = frozenset(
    {
        "location",
        "fields.list",
        "lookup",
        "upsert",
        "contact.create",
        "contact",
        "fields",
        "note",
        "notes.list",
        "tags.add",
        "tags.remove",
        "task",
        "tasks.list",
    }
)

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), k)
    for m, p, k in [
        ("GET", r"^/locations/(?P<loc>[^/]+)$", "location"),
        ("GET", r"^/locations/(?P<loc>[^/]+)/customFields$", "fields.list"),
        ("GET", r"^/contacts/search/duplicate$", "lookup"),
        ("POST", r"^/contacts/upsert$", "upsert"),
        ("POST", r"^/contacts/?$", "contact.create"),
        ("GET", r"^/contacts/(?P<cid>[^/]+)/notes$", "notes.list"),
        ("POST", r"^/contacts/(?P<cid>[^/]+)/notes$", "note"),
        ("POST", r"^/contacts/(?P<cid>[^/]+)/tags$", "tags.add"),
        ("DELETE", r"^/contacts/(?P<cid>[^/]+)/tags$", "tags.remove"),
        ("GET", r"^/contacts/(?P<cid>[^/]+)/tasks$", "tasks.list"),
        ("POST", r"^/contacts/(?P<cid>[^/]+)/tasks$", "task"),
        ("GET", r"^/contacts/(?P<cid>[^/]+)$", "contact"),
        ("PUT", r"^/contacts/(?P<cid>[^/]+)$", "fields"),
    ]
]

# Contact members a write may not set directly.
_RESERVED_CONTACT_KEYS = frozenset(
    {"id", "locationId", "tags", "customFields", "createNewIfDuplicateAllowed", "dateAdded", "dateUpdated"}
)


# ---------------------------------------------------------------------------
# spec loading and validation


@functools.cache
def load_spec(segment: str) -> OpenAPI:
    """One OpenAPI object per spec file (cached for the process).

    The upstream files do not pass strict OpenAPI 3.0 schema validation (their
    ``http`` security schemes also carry ``name``/``in``, a few path parameters
    are undeclared), so the up-front spec check is switched off; request
    validation itself works fine.
    """
    return OpenAPI.from_file_path(str(SPEC_DIR / SPEC_FILES[segment]), config=Config(spec_validator_cls=None))


class _SpecRequest(AIOHTTPOpenAPIWebRequest):
    """The aiohttp adapter, seen as if sent to the spec's server URL."""

    __slots__ = ()

    @property
    def host_url(self) -> str:
        return SPEC_SERVER


def _describe(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    seen = 0
    while cause is not None and seen < 3:
        details = getattr(cause, "schema_errors", None)
        if details:
            parts.extend(str(getattr(e, "message", e)) for e in details)
        else:
            parts.append(str(cause))
        cause = cause.__cause__
        seen += 1
    return " | ".join(dict.fromkeys(p for p in parts if p))


# ---------------------------------------------------------------------------
# helpers


def to_e164(phone: str | None) -> str | None:
    """Loose E.164 normalisation (NANP default) good enough for the fake's lookups."""
    if phone is None:
        return None
    text = str(phone).strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+"):
        return "+" + digits
    if text.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 10:
        return "+1" + digits
    return "+" + digits


def _new_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trace_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build with the class methods."""

    action: str
    code: int | None = None
    seconds: float = 0.0
    retry_after: float | str | None = None
    daily: bool = False
    perform: bool = False
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def none(cls) -> Fault:
        """Answer normally: a placeholder that lets a request through a queue of faults."""
        return cls("none")

    @classmethod
    def status(
        cls, code: int, body: Any = None, *, headers: dict[str, str] | None = None, perform: bool = False
    ) -> Fault:
        """Answer ``code`` (``body``: dict, str or None for GHL's shape); with ``perform=True`` the
        request is applied first, as by a server that fails after writing."""
        return cls("status", code=code, body=body, headers=tuple((headers or {}).items()), perform=perform)

    @classmethod
    def timeout(cls, seconds: float = 5.0, *, perform: bool = True) -> Fault:
        """Sleep ``seconds`` (longer than the client timeout), then answer normally.

        With ``perform=True`` the write is applied after the sleep, as a slow
        server would: the client has given up and the outcome is unknown to it.
        """
        return cls("timeout", seconds=seconds, perform=perform)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1, *, daily: bool = False) -> Fault:
        """429; ``Retry-After`` when ``retry_after`` is not None; ``daily`` reports daily exhaustion."""
        return cls("rate_limited", code=429, retry_after=retry_after, daily=daily)

    @classmethod
    def empty_201(cls) -> Fault:
        """Perform the write, then answer 201 with an empty body."""
        return cls("empty", code=201, perform=True)

    @classmethod
    def raw(cls, code: int, text: str, *, perform: bool = True) -> Fault:
        """Answer ``code`` with ``text`` as body (e.g. broken JSON), optionally performing the request."""
        return cls("raw", code=code, body=text, perform=perform)

    @classmethod
    def disconnect(cls, *, perform: bool = False) -> Fault:
        """Drop the connection without an answer (optionally after performing the request)."""
        return cls("disconnect", perform=perform)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    json: Any
    headers: dict[str, str]
    time: float
    kind: str | None
    status: int | None = None


class _Reply(Exception):
    """Raised by handlers to answer an error."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, message: Any, error: str | None = None) -> _Reply:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if error:
        body["error"] = error
    return _Reply(status, body)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _ghl_error_body(status: int) -> dict[str, Any]:
    if status == 401:
        return {"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"}
    if status == 403:
        return {"statusCode": 403, "message": "The token does not have access to this location."}
    return {"statusCode": status, "message": _REASONS.get(status, "Error")}


# ---------------------------------------------------------------------------
# the fake


class FakeGhl:
    """In-memory GHL for one location; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        location_id: str = DEFAULT_LOCATION_ID,
        rate: str = "100/10s",
        daily_limit: int = 200_000,
        allow_duplicate_contact: bool = False,
        send_daily_reset: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.location_id = location_id
        self.allow_duplicate_contact = allow_duplicate_contact
        self.send_daily_reset = send_daily_reset
        self._clock = clock
        self.base_url = ""

        # state
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.tasks: dict[str, list[dict[str, Any]]] = {}
        self.custom_fields: list[dict[str, Any]] = []
        self.ignored_custom_fields: list[str] = []
        self.location: dict[str, Any] = self._default_location()
        self._seed_custom_fields()

        # observation
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.unhandled: list[str] = []
        self.count_429 = 0
        self.in_flight = 0  # requests being handled, including ones whose client gave up

        # behaviour
        self._faults: list[tuple[str, deque[Fault]]] = []
        self._fail_all: int | None = None
        self.configure_rate(rate, daily_limit=daily_limit)

        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeGhl:
        for segment in SPEC_FILES:
            load_spec(segment)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGhl:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- configuration --------------------------------------------------------

    def configure_rate(self, rate: str, *, daily_limit: int | None = None) -> None:
        """Set the burst limit (e.g. ``"20/0.5s"``) and optionally the daily budget; resets counters."""
        self.rate_max, self.rate_window = parse_rate(rate)
        if daily_limit is not None:
            self.daily_limit = daily_limit
        self._window: deque[float] = deque()
        self.daily_used = 0

    def inject(self, kind_or_path_regex: str, *faults: Fault) -> None:
        """Queue ``faults`` for requests of a kind (``"note"``, ``"upsert"``...) or whose
        path (or ``"METHOD path"``) matches a regex; one fault per matching request, in order."""
        if not faults:
            raise ValueError("inject() needs at least one Fault")
        self._faults.append((kind_or_path_regex, deque(faults)))

    def fail_all(self, status: int = 503) -> None:
        """Answer every (valid) request with ``status`` until :meth:`heal`."""
        self._fail_all = status

    def heal(self) -> None:
        """End an outage and drop pending faults."""
        self._fail_all = None
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        return sum(len(q) for _, q in self._faults)

    async def quiet(self, timeout: float = 10.0) -> None:
        """Wait until no request is being handled (a write delayed past its client's timeout has
        landed by then)."""
        deadline = time.monotonic() + timeout
        while self.in_flight:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.in_flight} requests still in flight after {timeout:g}s")
            await asyncio.sleep(0.01)

    # -- seeding and inspection -----------------------------------------------

    def add_contact(self, phone: str | None = None, **fields: Any) -> dict[str, Any]:
        """Seed a contact directly (no request); returns the stored contact."""
        contact = self._create_contact({"phone": phone, **fields})
        return copy.deepcopy(contact)

    def contact_by_phone(self, phone: str) -> dict[str, Any] | None:
        wanted = to_e164(phone)
        for contact in self.contacts.values():
            if contact.get("phone") and contact["phone"] == wanted:
                return contact
        return None

    def custom_field_id(self, field_key: str) -> str:
        for definition in self.custom_fields:
            if definition["fieldKey"] == field_key:
                return definition["id"]
        raise KeyError(field_key)

    def custom_value(self, contact_id: str, field_key: str) -> Any:
        field_id = self.custom_field_id(field_key)
        for item in self.contacts[contact_id]["customFields"]:
            if item["id"] == field_id:
                return item["value"]
        return None

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == kind]

    def count(self, kind: str) -> int:
        return len(self.requests_of(kind))

    # -- seeds ----------------------------------------------------------------

    def _default_location(self) -> dict[str, Any]:
        return {
            "id": self.location_id,
            "companyId": "5DP4iH6HLkQsiKESj6rh",
            "name": "Callsync Test Sub-Account",
            "domain": "",
            "address": "4th fleet street",
            "city": "New York",
            "state": "Illinois",
            "logoUrl": "",
            "country": "US",
            "postalCode": "567654",
            "website": "https://example.com",
            "timezone": "US/Central",
            "firstName": "Test",
            "lastName": "Owner",
            "email": "owner@example.com",
            "phone": "+15550000001",
            "business": {
                "name": "Callsync Test",
                "address": "4th fleet street",
                "city": "New York",
                "state": "Illinois",
                "country": "US",
                "postalCode": "567654",
                "website": "https://example.com",
                "timezone": "US/Central",
                "logoUrl": "",
                "email": "owner@example.com",
            },
            "social": {
                "facebookUrl": "",
                "googlePlus": "",
                "linkedIn": "",
                "foursquare": "",
                "twitter": "",
                "yelp": "",
                "instagram": "",
                "youtube": "",
                "pinterest": "",
                "blogRss": "",
                "googlePlacesId": "",
            },
            "settings": {
                "allowDuplicateContact": self.allow_duplicate_contact,
                "allowDuplicateOpportunity": False,
                "allowFacebookNameMerge": False,
                "disableContactTimezone": False,
            },
            "reseller": {},
        }

    def _seed_custom_fields(self) -> None:
        seeds = [
            ("Last Call Outcome", "contact.last_call_outcome", "TEXT"),
            ("Last Call Date", "contact.last_call_date", "DATE"),
            ("Callback Count", "contact.callback_count", "NUMERICAL"),
        ]
        for position, (name, key, data_type) in enumerate(seeds):
            self.custom_fields.append(
                {
                    "id": _new_id(),
                    "name": name,
                    "fieldKey": key,
                    "placeholder": "",
                    "dataType": data_type,
                    "position": position * 50,
                    "picklistOptions": [],
                    "picklistImageOptions": [],
                    "isAllowedCustomOption": False,
                    "isMultiFileAllowed": False,
                    "maxFileLimit": 0,
                    "locationId": self.location_id,
                    "model": "contact",
                }
            )

    # -- request pipeline -------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body_json: Any = None
        if raw:
            try:
                body_json = json.loads(raw)
            except ValueError:
                body_json = None
        method = request.method.upper()
        path = request.path
        kind, match = self._route(method, path)
        record = RecordedRequest(
            method=method,
            path=path,
            query=dict(request.query),
            raw_query=request.query_string,
            json=body_json,
            headers=dict(request.headers),
            time=self._clock(),
            kind=kind,
        )
        self.requests.append(record)
        self.in_flight += 1
        try:
            response = await self._pipeline(request, raw, body_json, method, path, kind, match)
        finally:
            self.in_flight -= 1
        record.status = response.status
        return response

    def _route(self, method: str, path: str) -> tuple[str | None, re.Match[str] | None]:
        for route_method, pattern, kind in _ROUTES:
            if route_method == method:
                match = pattern.match(path)
                if match:
                    return kind, match
        return None, None

    async def _pipeline(
        self,
        request: web.Request,
        raw: bytes,
        body_json: Any,
        method: str,
        path: str,
        kind: str | None,
        match: re.Match[str] | None,
    ) -> web.StreamResponse:
        problem = self._validate(request, raw)
        if problem is not None:
            status, message = problem
            self.violations.append(f"{method} {path}: {message}")
            if status == 401:
                return self._json(401, _ghl_error_body(401))
            return self._json(status, {"statusCode": status, "message": [message], "error": _REASONS[status]})

        if self._fail_all is not None:
            return self._json(self._fail_all, _ghl_error_body(self._fail_all))

        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return self._json(401, _ghl_error_body(401))

        limited = self._rate_check()
        if limited is not None:
            return limited

        fault = self._take_fault(kind, method, path)
        if fault is not None:
            return await self._apply_fault(fault, request, body_json, method, path, kind, match)
        return self._handle(body_json, request, method, path, kind, match)

    def _validate(self, request: web.Request, raw: bytes) -> tuple[int, str] | None:
        segment = request.path.strip("/").split("/", 1)[0]
        if segment not in SPEC_FILES:
            return 404, f"path {request.path} is not in the copied spec files"
        openapi = load_spec(segment)
        try:
            openapi.validate_request(_SpecRequest(request, body=raw or None))
        except SecurityValidationError as exc:
            return 401, _describe(exc)
        except (PathNotFound, OperationNotFound) as exc:
            return 404, _describe(exc)
        except Exception as exc:  # every other openapi-core validation error
            return 422, _describe(exc)
        return None

    # -- rate limiting ---------------------------------------------------------

    def _rate_check(self) -> web.Response | None:
        now = self._clock()
        horizon = now - self.rate_window
        while self._window and self._window[0] <= horizon:
            self._window.popleft()
        if self.daily_used >= self.daily_limit:
            self.count_429 += 1
            return self._json(429, {"statusCode": 429, "message": "Daily API limit reached"})
        if len(self._window) >= self.rate_max:
            self.count_429 += 1
            return self._json(429, {"statusCode": 429, "message": "Too Many Requests"})
        self._window.append(now)
        self.daily_used += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        now = self._clock()
        in_window = sum(1 for t in self._window if t > now - self.rate_window)
        headers = {
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used)),
            "X-RateLimit-Interval-Milliseconds": str(int(round(self.rate_window * 1000))),
            "X-RateLimit-Max": str(self.rate_max),
            "X-RateLimit-Remaining": str(max(0, self.rate_max - in_window)),
        }
        if self.send_daily_reset:
            now_utc = datetime.now(timezone.utc)
            midnight = datetime.combine(now_utc.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
            headers["X-RateLimit-Daily-Reset"] = str(int((midnight - now_utc).total_seconds() * 1000))
        return headers

    def _json(self, status: int, body: Any, *, headers: dict[str, str] | None = None) -> web.Response:
        if isinstance(body, dict) and "traceId" not in body:
            body = {**body, "traceId": _trace_id()}
        all_headers = self._rate_headers()
        all_headers.update(headers or {})
        return web.json_response(body, status=status, headers=all_headers)

    # -- faults ------------------------------------------------------------------

    def _take_fault(self, kind: str | None, method: str, path: str) -> Fault | None:
        for key, queue in self._faults:
            if not queue:
                continue
            if key in KINDS:
                hit = key == kind
            else:
                hit = re.search(key, path) is not None or re.search(key, f"{method} {path}") is not None
            if hit:
                fault = queue.popleft()
                self._faults = [(k, q) for k, q in self._faults if q]
                return fault
        return None

    async def _apply_fault(
        self,
        fault: Fault,
        request: web.Request,
        body_json: Any,
        method: str,
        path: str,
        kind: str | None,
        match: re.Match[str] | None,
    ) -> web.StreamResponse:
        if fault.action == "none":
            return self._handle(body_json, request, method, path, kind, match)
        if fault.action == "status":
            assert fault.code is not None
            if fault.perform:
                self._handle(body_json, request, method, path, kind, match)
            if fault.code == 429:
                self.count_429 += 1
            if fault.body is None:
                body: Any = _ghl_error_body(fault.code)
            else:
                body = fault.body
            if isinstance(body, str):
                resp = web.Response(status=fault.code, text=body, headers=self._rate_headers())
            else:
                resp = self._json(fault.code, body)
            resp.headers.update(dict(fault.headers))
            return resp
        if fault.action == "rate_limited":
            self.count_429 += 1
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            if fault.daily:
                headers["X-RateLimit-Daily-Remaining"] = "0"
            message = "Daily API limit reached" if fault.daily else "Too Many Requests"
            return self._json(429, {"statusCode": 429, "message": message}, headers=headers)
        if fault.action == "timeout":
            await asyncio.sleep(fault.seconds)
            if fault.perform:
                return self._handle(body_json, request, method, path, kind, match)
            return self._json(504, _ghl_error_body(504))
        if fault.action == "empty":
            result = self._handle(body_json, request, method, path, kind, match)
            return web.Response(status=201 if result.status < 300 else result.status, body=b"")
        if fault.action == "raw":
            if fault.perform:
                self._handle(body_json, request, method, path, kind, match)
            return web.Response(
                status=fault.code or 200,
                text=str(fault.body),
                content_type="application/json",
                headers=self._rate_headers(),
            )
        if fault.action == "disconnect":
            if fault.perform:
                self._handle(body_json, request, method, path, kind, match)
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError()
        raise AssertionError(f"unknown fault {fault}")

    # -- handlers ----------------------------------------------------------------

    def _handle(
        self,
        body: Any,
        request: web.Request,
        method: str,
        path: str,
        kind: str | None,
        match: re.Match[str] | None,
    ) -> web.Response:
        if kind is None or match is None:
            self.unhandled.append(f"{method} {path}")
            return self._json(501, {"statusCode": 501, "message": f"{method} {path} is not implemented by the fake"})
        handler = getattr(self, "_h_" + kind.replace(".", "_"))
        try:
            status, payload = handler(body if isinstance(body, dict) else {}, request, **match.groupdict())
        except _Reply as reply:
            return self._json(reply.status, reply.body)
        return self._json(status, payload)

    def _check_location(self, location_id: str | None) -> None:
        if location_id != self.location_id:
            raise _error(403, "The token does not have access to this location.")

    def _contact(self, contact_id: str) -> dict[str, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise _error(400, "Contact not found")
        return contact

    def _view(self, contact: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(contact)

    def _h_location(self, body: dict, request: web.Request, loc: str) -> tuple[int, dict]:
        self._check_location(loc)
        self.location["settings"]["allowDuplicateContact"] = self.allow_duplicate_contact
        return 200, {"location": copy.deepcopy(self.location)}

    def _h_fields_list(self, body: dict, request: web.Request, loc: str) -> tuple[int, dict]:
        self._check_location(loc)
        model = request.query.get("model", "all")
        fields = [f for f in self.custom_fields if model == "all" or f["model"] == model]
        return 200, {"customFields": copy.deepcopy(fields)}

    def _h_lookup(self, body: dict, request: web.Request) -> tuple[int, dict]:
        self._check_location(request.query.get("locationId"))
        contact = self._find(request.query.get("number"), request.query.get("email"))
        return 200, {"contact": self._view(contact) if contact else None}

    def _h_upsert(self, body: dict, request: web.Request) -> tuple[int, dict]:
        self._check_location(body.get("locationId"))
        if not body.get("phone") and not body.get("email"):
            raise _error(400, "Either email or phone is required")
        existing = None
        if not (self.allow_duplicate_contact and body.get("createNewIfDuplicateAllowed")):
            existing = self._find(body.get("phone"), body.get("email"))
        if existing is None:
            contact = self._create_contact(body)
            return 200, {"new": True, "contact": self._view(contact)}
        self._update_contact(existing, body)
        return 200, {"new": False, "contact": self._view(existing)}

    def _h_contact_create(self, body: dict, request: web.Request) -> tuple[int, dict]:
        self._check_location(body.get("locationId"))
        if not self.allow_duplicate_contact and self._find(body.get("phone"), body.get("email")):
            raise _error(400, "This location does not allow duplicated contacts.")
        contact = self._create_contact(body)
        return 201, {"contact": self._view(contact)}

    def _h_contact(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        return 200, {"contact": self._view(self._contact(cid))}

    def _h_fields(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        contact = self._contact(cid)
        self._update_contact(contact, body)
        return 200, {"succeded": True, "contact": self._view(contact)}

    def _h_note(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        self._contact(cid)
        note = {
            "id": _new_id(),
            "body": body.get("body", ""),
            "userId": body.get("userId"),
            "dateAdded": _now_iso(),
            "contactId": cid,
        }
        self.notes.setdefault(cid, []).append(note)
        return 201, {"note": copy.deepcopy(note)}

    def _h_notes_list(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        self._contact(cid)
        notes = list(reversed(self.notes.get(cid, [])))  # newest first
        return 200, {"notes": copy.deepcopy(notes)}

    def _h_tags_add(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        contact = self._contact(cid)
        for tag in body.get("tags", []):
            tag = str(tag).strip().lower()
            if tag and tag not in contact["tags"]:
                contact["tags"].append(tag)
        contact["dateUpdated"] = _now_iso()
        return 201, {"tags": list(contact["tags"])}

    def _h_tags_remove(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        contact = self._contact(cid)
        drop = {str(t).strip().lower() for t in body.get("tags", [])}
        contact["tags"] = [t for t in contact["tags"] if t not in drop]
        contact["dateUpdated"] = _now_iso()
        return 200, {"tags": list(contact["tags"])}

    def _h_task(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        self._contact(cid)
        task = {
            "id": _new_id(),
            "title": body["title"],
            "body": body.get("body", ""),
            "assignedTo": body.get("assignedTo"),
            "dueDate": body["dueDate"],
            "completed": bool(body.get("completed", False)),
            "contactId": cid,
        }
        self.tasks.setdefault(cid, []).append(task)
        return 201, {"task": copy.deepcopy(task)}

    def _h_tasks_list(self, body: dict, request: web.Request, cid: str) -> tuple[int, dict]:
        self._contact(cid)
        return 200, {"tasks": copy.deepcopy(self.tasks.get(cid, []))}

    # -- contact storage -----------------------------------------------------------

    def _find(self, phone: str | None, email: str | None) -> dict[str, Any] | None:
        if email:
            wanted = email.strip().lower()
            for contact in self.contacts.values():
                if (contact.get("email") or "").lower() == wanted:
                    return contact
        if phone:
            return self.contact_by_phone(phone)
        return None

    def _create_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        now = _now_iso()
        contact: dict[str, Any] = {
            "id": _new_id(),
            "locationId": self.location_id,
            "firstName": None,
            "lastName": None,
            "name": None,
            "email": None,
            "phone": None,
            "type": "lead",
            "source": None,
            "dnd": False,
            "tags": [],
            "customFields": [],
            "dateAdded": now,
            "dateUpdated": now,
        }
        self.contacts[contact["id"]] = contact
        self._update_contact(contact, body, touch=False)
        return contact

    def _update_contact(self, contact: dict[str, Any], body: dict[str, Any], *, touch: bool = True) -> None:
        for key, value in body.items():
            if key in _RESERVED_CONTACT_KEYS or value is None:
                continue
            if key == "phone":
                value = to_e164(value)
            elif key == "email":
                contact["emailLowerCase"] = str(value).lower()
            contact[key] = value
        if ("firstName" in body or "lastName" in body) and "name" not in body:
            full = " ".join(p for p in (contact.get("firstName"), contact.get("lastName")) if p)
            contact["name"] = full or contact.get("name")
        if body.get("tags") is not None:  # upsert/update with tags overwrites them all
            contact["tags"] = []
            for tag in body["tags"]:
                tag = str(tag).strip().lower()
                if tag and tag not in contact["tags"]:
                    contact["tags"].append(tag)
        for item in body.get("customFields") or []:
            self._set_custom_value(contact, item)
        if touch:
            contact["dateUpdated"] = _now_iso()

    def _set_custom_value(self, contact: dict[str, Any], item: dict[str, Any]) -> None:
        field_id = item.get("id")
        definition = next((f for f in self.custom_fields if f["id"] == field_id), None)
        if definition is None:
            # GHL ignores unknown ids without an error; keep a trace for tests.
            self.ignored_custom_fields.append(str(field_id))
            return
        for key in ("field_value", "value", "fieldValue"):
            if key in item:
                value = item[key]
                break
        else:
            return
        if definition["dataType"] in ("NUMERICAL", "MONETORY") and isinstance(value, str) and value.strip():
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                value = int(number) if number.is_integer() and math.isfinite(number) else number
        items = [c for c in contact["customFields"] if c["id"] != field_id]
        if value not in (None, "", []):
            items.append({"id": field_id, "value": value})
        contact["customFields"] = items
