"""The hooks listener: ``POST /hooks/<source>``.

Checks run cheapest first: unknown source (404), size (413), media type (415),
IP allowlist (403), secrets configured, signature and auth method (401, ``verify.py``), payload (400), then the event is handed
to the store writer and the response waits for the commit (2xx) or reports
that nothing could be stored (503 + Retry-After, so the sender retries) - at the
latest after ``[server] ack_timeout_seconds``: no request waits on storage without
bound.  A payload that can never be stored is a 400, never a 503.

Every rejection is counted as ``rejected:<reason>`` and, for a configured source,
``source_rejected:<source>:<reason>`` (per hour, in ``stats_hourly``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from aiohttp import web

from connector import formats
from connector.config import Config, SourceConfig
from connector.metrics import LatencyWindow
from connector.model import CallEvent, PayloadError
from connector.formats.generic import mapping_for
from connector.receiver.signatures import Unauthorized
from connector.receiver.verify import NoSecret, RequestParts, SelfSigner, verify_request
from connector.formats.storable import escape
from connector.redact import SECRET_HEADERS, header_redactor
from connector.secrets import env_name, secret_values
from connector.store.faults import Unstorable
from connector.store.writer import Incoming, StoreWriter

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
TEST_HEADER = "X-Callsync-Test"  # "1": a test event (the window's "send test event"), never synced
REDACTED_HEADERS = SECRET_HEADERS  # connector.redact: never stored


def is_json(content_type: str) -> bool:
    return content_type in ("application/json", "text/json") or content_type.endswith("+json")


_REDACTORS: dict[tuple[str, str], Callable[[Mapping[str, str]], dict[str, str]]] = {}


def redact(headers: Mapping[str, str], source: SourceConfig) -> dict[str, str]:
    """The request's headers as stored (signatures and credentials redacted); one redactor per
    combination of a source's own secret headers, made once."""
    key = (source.signature_header, source.api_key_header)
    redactor = _REDACTORS.get(key)
    if redactor is None:
        redactor = _REDACTORS[key] = header_redactor(*key)
    return redactor(headers)


def _reply(http_status: int, **body: object) -> web.Response:
    headers = {"Retry-After": "5"} if http_status == 503 else None
    return web.json_response(body, status=http_status, headers=headers)


def _stored(ids: list[int]) -> web.Response:
    """200 ``{"status": "stored", "event_id", "event_ids"}`` (the answer to nearly every request)."""
    listed = ",".join(map(str, ids))
    return web.Response(text=f'{{"status":"stored","event_id":{ids[0]},"event_ids":[{listed}]}}',
                        content_type="application/json")


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request body, within ``timeout`` (TimeoutError).  A small webhook's body arrives with its
    headers: then there is nothing to wait for and no timer is set."""
    if request.content.is_eof():
        return await request.read()
    async with asyncio.timeout(timeout):
        return await request.read()


class HooksReceiver:
    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        *,
        latency: LatencyWindow | None = None,
        secrets_for: Callable[[str], Sequence[str]] = secret_values,
        clock: Callable[[], float] = time.time,
        public_url: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        # The URL senders call (Twilio signs it): [server] public_url, else the tunnel's.
        self.public_url = public_url or (lambda: self.config.server.public_url)
        self.writer = writer
        self.latency = latency or LatencyWindow()
        self.secrets_for = secrets_for  # keyring user -> its current and previous value
        self.clock = clock
        self.self_signer = SelfSigner()  # signs the window's test events for public-key kinds
        self._warned_no_secret: set[str] = set()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.server.max_body_bytes)
        app.router.add_post("/hooks/{name}", self.handle)
        return app

    def _reject(self, status: int, reason: str, message: str, source: str | None = None) -> web.Response:
        """Count and answer a rejection; ``source`` is a configured source (never a name from the URL
        that matches none: those are counted only in total, so the counter names stay bounded)."""
        self.writer.count(f"rejected:{reason}")
        if source is not None:
            self.writer.count(f"source_rejected:{source}:{reason}")
        return _reply(status, status="error" if status == 503 else "rejected", reason=reason, error=message)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await self._handle(request)
        self.latency.observe((time.perf_counter() - started) * 1000)
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        source = self.config.sources.get(name)
        if source is None:
            return self._reject(404, "unknown_source", f"no source named {escape(name)!r} is configured")
        limit, server = self.config.server.max_body_bytes, self.config.server
        if request.content_length is not None and request.content_length > limit:
            return self._reject(413, "too_large", f"body over {limit} bytes", name)
        try:
            body = await read_body(request, server.header_timeout_seconds)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, "too_large", f"body over {limit} bytes", name)
        except asyncio.TimeoutError:
            response = self._reject(408, "slow_body", f"body not received within {server.header_timeout_seconds:g} s", name)
            response.force_close()
            return response
        content_type = request.content_type
        form = content_type == FORM
        if not (form or is_json(content_type)):
            return self._reject(415, "unsupported_media_type",
                                f"content type {escape(content_type)!r} is not JSON or a form", name)

        try:
            test_signed = verify_request(source, self.config.server, self._parts(request, body, form),
                                         self.secrets_for, self.clock(), self.self_signer.public_key)
        except NoSecret as exc:
            if name not in self._warned_no_secret:
                self._warned_no_secret.add(name)
                log.warning(
                    "source %r has no secret, every request is refused: run `callsync secret set %s` "
                    "or set %s in the environment", name, exc.user, env_name(exc.user),
                )
            return self._reject(401, "no_secret", exc.message, name)
        except Unauthorized as exc:
            return self._reject(exc.status, exc.reason, exc.message, name)

        try:
            events = formats.normalize(body, content_type, request.headers, format_hint=source.payload_format,
                                       mapping=mapping_for(source.fields, source.status_map))
        except PayloadError as exc:
            return self._reject(400, "bad_payload", str(exc), name)
        if not events:
            return self._reject(400, "bad_payload", "the payload holds no event", name)
        if test_signed or request.headers.get(TEST_HEADER, "").strip() == "1":
            for ev in events:
                ev.test = True
        return await self._store(name, events, body, content_type, redact(request.headers, source))

    async def _store(self, name: str, events: list[CallEvent], body: bytes, content_type: str,
                     headers: dict[str, str]) -> web.Response:
        """Hand the events to the writer; answer after the commit, or 503 within the ack timeout."""
        timeout = self.config.server.ack_timeout_seconds
        if self.writer.busy_seconds() > timeout:  # stalled on a write already: do not pile up more
            return self._reject(503, "storage_timeout", f"the store has not answered for {timeout:g} s; retry", name)
        received_at = self.clock()
        futures = [
            self.writer.store(Incoming(name, ev, body, content_type, headers, received_at)) for ev in events
        ]
        try:
            async with asyncio.timeout(timeout):
                results = [await futures[0]] if len(futures) == 1 else await asyncio.gather(*futures)
        except TimeoutError:
            log.warning("store did not answer within %g s for an event from %s: answered 503", timeout, name)
            return self._reject(503, "storage_timeout", f"the store did not answer within {timeout:g} s; retry", name)
        except Unstorable as exc:  # this payload can never be stored: retrying cannot help
            log.warning("an event from %s cannot be stored: %s", name, exc)
            return self._reject(400, "unstorable", f"the event cannot be stored: {exc}", name)
        except Exception as exc:  # noqa: BLE001 - storage failed: the sender must retry
            log.warning("could not store an event from %s: %s", name, exc)
            return self._reject(503, "storage_error", "could not store the event; retry", name)
        if all(r.duplicate for r in results):
            return _reply(200, status="duplicate", dedupe_key=events[0].dedupe_key)
        return _stored([r.event_id for r in results if not r.duplicate])

    def _parts(self, request: web.Request, body: bytes, form: bool) -> RequestParts:
        public = self.public_url()
        return RequestParts(
            body=body,
            headers=request.headers,
            query=request.query,
            url=public + request.path_qs if public else "",
            is_form=form,
            peer=request.remote,
            forwarded_for=tuple(request.headers.getall("X-Forwarded-For", ())),
        )
