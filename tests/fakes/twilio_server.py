"""In-memory Twilio REST API (2010-04-01) for tests, checked against Twilio's official OpenAPI description.

``FakeTwilio`` serves the two operations reconciliation uses - list calls (filters, paging through
``next_page_uri``) and fetch one call - from the spec subset in ``twilio_openapi/`` (MIT, Twilio Inc.).
Every request is validated with openapi-core (path, method, parameter names and formats such as
``StartTime>``'s ``date-time``, ``PageSize`` bounds, HTTP Basic security); a request that fails is answered
400 and recorded in ``fake.violations`` (the fixture fails the test when any remain).

Calls are resources of the spec's ``api.v2010.account.call`` shape (``make_call``).  Faults on demand::

    fake.inject(Fault(429, retry_after="0.05"), Fault(503))   # the next requests, in order
"""

from __future__ import annotations

import functools
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.contrib.aiohttp import AIOHTTPOpenAPIWebRequest

SPEC = Path(__file__).with_name("twilio_openapi") / "twilio_api_v2010.json"
SPEC_SERVER = "https://api.twilio.com"
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")


@functools.cache
def load_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC), config=Config(spec_validator_cls=None))


class _SpecRequest(AIOHTTPOpenAPIWebRequest):
    __slots__ = ()

    @property
    def host_url(self) -> str:
        return SPEC_SERVER


def rfc2822(when: datetime) -> str:
    return format_datetime(when.astimezone(timezone.utc), usegmt=False).replace("-0000", "+0000")


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


def make_call(account_sid: str, *, sid: str | None = None, status: str = "completed", start: datetime,
              duration: int | None = 42, to: str = "+15555550123", from_: str = "+15005550006",
              direction: str = "outbound-api", answered_by: str | None = None,
              parent_call_sid: str | None = None) -> dict[str, Any]:
    """A Call resource as the API returns it (every property of the spec's schema)."""
    sid = sid or new_sid()
    end = start + timedelta(seconds=(duration or 0) + 5) if status in TERMINAL else None
    return {
        "sid": sid, "date_created": rfc2822(start), "date_updated": rfc2822(end or start),
        "parent_call_sid": parent_call_sid, "account_sid": account_sid, "to": to, "to_formatted": to, "from": from_,
        "from_formatted": from_, "phone_number_sid": new_sid("PN"), "status": status,
        "start_time": rfc2822(start), "end_time": rfc2822(end) if end else None,
        "duration": str(duration) if status in TERMINAL and duration is not None else None,
        "price": None, "price_unit": "USD", "direction": direction, "answered_by": answered_by,
        "api_version": "2010-04-01", "forwarded_from": None, "group_sid": None, "caller_name": None,
        "queue_time": "0", "trunk_sid": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json",
        "subresource_uris": {"events": f"/2010-04-01/Accounts/{account_sid}/Calls/{sid}/Events.json"},
    }


@dataclass
class Fault:
    status: int
    retry_after: str | None = None


def _when(text: str) -> datetime:
    if "T" in text:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class FakeTwilio:
    def __init__(self, account_sid: str | None = None, token: str = "twilio-auth-token-0123456789abcdef") -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.credentials = {self.account_sid: token}  # username -> password (an API key SID may be added)
        self.calls: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (path, query string) of every request
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    # -- state -------------------------------------------------------------------------
    def add(self, **kwargs: Any) -> dict[str, Any]:
        call = make_call(self.account_sid, **kwargs)
        self.calls[call["sid"]] = call
        return call

    def finish(self, sid: str, status: str = "completed", duration: int = 42) -> dict[str, Any]:
        call = self.calls[sid]
        start = parsedate_to_datetime(call["start_time"])
        self.calls[sid] = make_call(self.account_sid, sid=sid, status=status, start=start, duration=duration,
                                    to=call["to"], from_=call["from"], direction=call["direction"],
                                    parent_call_sid=call["parent_call_sid"])
        return self.calls[sid]

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    # -- server ------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/2010-04-01/Accounts/{account}/Calls.json", self.list_calls)
        app.router.add_get("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.fetch_call)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _check(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.path, request.query_string))
        try:
            load_spec().validate_request(_SpecRequest(request, body=None))
        except Exception as exc:  # noqa: BLE001 - any validation failure is a violation
            cause = exc.__cause__
            details = getattr(cause, "schema_errors", None)
            message = f"{type(exc).__name__}: {exc}" + (f" | {[str(e.message) for e in details]}" if details else
                                                         f" | {cause}" if cause else "")
            self.violations.append(f"GET {request.path_qs}: {message}")
            return web.json_response({"code": 20001, "message": message, "status": 400}, status=400)
        auth = request.headers.get("Authorization", "")
        import base64

        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            user = password = ""
        if self.credentials.get(user) != password or request.match_info["account"] != self.account_sid:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401,
                                      "more_info": "https://www.twilio.com/docs/errors/20003"}, status=401)
        if self.faults:
            fault = self.faults.pop(0)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return web.json_response({"code": 20429 if fault.status == 429 else 20500, "status": fault.status,
                                      "message": "Too Many Requests" if fault.status == 429 else "Internal error"},
                                     status=fault.status, headers=headers)
        return None

    async def list_calls(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        query = request.query
        calls = sorted(self.calls.values(), key=lambda c: (parsedate_to_datetime(c["start_time"]), c["sid"]),
                       reverse=True)
        for key, keep in (("StartTime>", lambda t, v: t >= v), ("StartTime<", lambda t, v: t <= v)):
            if key in query:
                limit = _when(query[key])
                calls = [c for c in calls if keep(parsedate_to_datetime(c["start_time"]), limit)]
        if "Status" in query:
            calls = [c for c in calls if c["status"] == query["Status"]]
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        chunk = calls[page * size:(page + 1) * size]
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        filters = [(k, v) for k, v in query.items() if k not in ("Page", "PageToken", "PageSize")]

        def uri(number: int, token: str | None) -> str:
            params = filters + [("PageSize", str(size)), ("Page", str(number))]
            if token:
                params.append(("PageToken", token))
            return f"{base}?{urlencode(params)}"

        more = (page + 1) * size < len(calls)
        body = {"calls": chunk, "start": page * size, "end": page * size + max(len(chunk) - 1, 0), "page": page,
                "page_size": size, "uri": uri(page, query.get("PageToken")), "first_page_uri": uri(0, None),
                "next_page_uri": uri(page + 1, "PA" + chunk[-1]["sid"]) if more else None,
                "previous_page_uri": uri(page - 1, None) if page else None}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def fetch_call(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return web.json_response({"code": 20404, "message": "The requested resource was not found",
                                      "status": 404}, status=404)
        return web.Response(text=json.dumps(call), content_type="application/json")
