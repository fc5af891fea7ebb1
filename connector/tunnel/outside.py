""""Test from outside": a signed test event sent to the PUBLIC URL, as the dialer would send it.

It passes when callsync's own receiver stored that very event (its probe id is among the stored
request's headers), which proves the request came back in through the tunnel; the round trip is
measured from sending to the receiver's answer.  The event is marked as a test: never a call,
never written to the CRM.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from connector import secrets
from connector.store import events as store_events
from connector.test_events import build_test_request, credentials_for_test

PROBE_HEADER = "X-Callsync-Probe"
TIMEOUT = 20.0


@dataclass(slots=True)
class OutsideResult:
    ok: bool
    message: str
    round_trip_ms: float | None = None
    public_url: str | None = None
    event_id: int | None = None


def pick_source(service: Any, name: str | None) -> str | None:
    """The named source, else the first one (by name) that has a secret."""
    sources = service.config.sources
    if name:
        return name if name in sources else None
    for candidate in sorted(sources):
        if secrets.get_secret(secrets.source_user(candidate)):
            return candidate
    return min(sources, default=None)


async def test_from_outside(service: Any, source_name: str | None = None) -> OutsideResult:
    base = service.public_url()
    tunnel = service.tunnel.status()
    if not base:
        reason = tunnel["error"] or "the tunnel is off"
        return OutsideResult(False, f"No public URL yet: {reason}")
    name = pick_source(service, source_name)
    if name is None:
        return OutsideResult(False, "Add a source first: the test event is sent to a source's public URL.", None, base)
    source = service.config.sources[name]
    # Signed (and authenticated) exactly like the Sources tab's test event: every kind and auth method.
    credentials, missing = credentials_for_test(source)
    if missing:
        return OutsideResult(False, missing, None, base)
    url = f"{base}/hooks/{name}"
    now = service.clock()
    call_id = ("CA" + uuid.uuid4().hex) if source.kind == "twilio" else f"test-{uuid.uuid4().hex[:12]}"
    probe = uuid.uuid4().hex
    request = build_test_request(source, credentials, call_id, url, service.receiver.self_signer.private_key, now)
    body, headers = request.body, request.headers | {PROBE_HEADER: probe}
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
            async with http.post(url, data=body, headers=headers, params=request.query or None) as resp:
                status = resp.status
                text = await resp.text()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return OutsideResult(False, f"{url} could not be reached from this machine: {' '.join(str(exc).split())}",
                             None, base)
    round_trip = (time.perf_counter() - started) * 1000
    answer = _json(text)
    event_id = answer.get("event_id")
    if status != 200 or not isinstance(event_id, int):
        what = answer.get("error") or answer.get("reason") or " ".join(text.split())[:160]
        return OutsideResult(False, f"{url} answered HTTP {status} ({what}) and the event did not arrive here.",
                             round_trip, base)
    event = await service.reader.run(store_events.get_event, event_id)
    seen = {k.lower(): v for k, v in ((event or {}).get("headers") or {}).items()}.get(PROBE_HEADER.lower())
    if seen != probe:
        return OutsideResult(False, f"{url} answered, but not from this callsync: another program serves that URL.",
                             round_trip, base)
    return OutsideResult(True, f"The test event came back in through the tunnel ({url}): stored as event "
                               f"#{event_id}, round trip {round_trip:.0f} ms.", round_trip, base, event_id)


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
