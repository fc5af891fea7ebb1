"""``callsync --self-test``: does this installation work on this machine?

Starts the receiver on free loopback ports in a temporary data dir, sends one signed
event through real HTTP, checks that it was stored and that its call was queued for
the CRM, then checks the keyring backend.  The window's launcher adds a check that
the Qt platform plugin loads.  One line per check; the exit code is 0 only when all
pass.  "No OS keyring, secrets from the environment" is a note, not a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = "selftest"


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    note: bool = False  # passed, but worth a look (e.g. no OS keyring)

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.note else ("note" if self.ok else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


ExtraCheck = Callable[[], Check]


def _signed_event(secret: str) -> tuple[bytes, dict[str, str], str]:
    call_id = f"selftest-{uuid.uuid4().hex[:12]}"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = json.dumps(
        {"event": "call.completed", "call_uuid": call_id, "from": "+15005550006", "to": "+15005550001",
         "direction": "outbound", "initiated_at": now, "ended_at": now, "duration_seconds": 0,
         "hangup_cause": "no_answer"},
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Webhook-Signature": signature}, call_id


async def _receiver_round_trip(data_dir: Path) -> list[Check]:
    import aiohttp

    from connector.app import Service
    from connector.config import parse_config

    config = parse_config(
        {"server": {"host": "127.0.0.1", "port": 0, "admin_port": 0}, "sources": {SOURCE: {"kind": "hmac"}}},
        data_dir,
    )
    secret = uuid.uuid4().hex
    os.environ[f"CALLSYNC_SECRET_{SOURCE.upper()}"] = secret
    service = Service(config)
    checks: list[Check] = []
    await service.start()
    try:
        checks.append(Check("receiver", True, f"listening on {service.hooks_url}, admin on {service.admin_url}"))
        body, headers, call_id = _signed_event(secret)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{service.hooks_url}/hooks/{SOURCE}", data=body, headers=headers) as resp:
                answer: Any = await resp.json(content_type=None)
                status = resp.status
        if status != 200 or answer.get("status") != "stored":
            checks.append(Check("signed event", False, f"HTTP {status}: {answer}"))
            return checks
        checks.append(Check("signed event", True, f"stored as event {answer.get('event_id')}"))

        def look(conn: Any) -> tuple[int, int]:
            events = conn.execute("SELECT COUNT(*) FROM events WHERE source = ? AND call_id = ?",
                                  (SOURCE, call_id)).fetchone()[0]
            jobs = conn.execute("SELECT COUNT(*) FROM jobs WHERE source = ? AND call_id = ?",
                                (SOURCE, call_id)).fetchone()[0]
            return events, jobs

        events, jobs = await service.reader.run(look)
        checks.append(Check("store", events == 1, f"{events} event row(s) in {config.db_path.name}"))
        checks.append(Check("CRM queue", jobs == 1, f"{jobs} sync job(s) queued for the finished call"))
    finally:
        os.environ.pop(f"CALLSYNC_SECRET_{SOURCE.upper()}", None)
        await service.stop()
    return checks


def keyring_check() -> Check:
    from connector import secrets

    usable, message = secrets.keyring_usable()
    if usable:
        return Check("keyring", True, message)
    return Check("keyring", True, message, note=True)  # the message names the environment variables


def run(extra: list[ExtraCheck] | None = None, out: Callable[[str], None] = print) -> int:
    """Run every check, print one line each; 0 when all passed."""
    checks: list[Check] = []
    logging.getLogger("connector").setLevel(logging.WARNING)  # one line per check, not the service's log
    # The self-test must never touch the user's keyring: the admin token comes from the environment.
    os.environ.setdefault("CALLSYNC_ADMIN_TOKEN", uuid.uuid4().hex)
    with tempfile.TemporaryDirectory(prefix="callsync-selftest-") as tmp:
        try:
            checks += asyncio.run(_receiver_round_trip(Path(tmp)))
        except Exception as exc:  # noqa: BLE001 - a failed check, reported as one line
            checks.append(Check("receiver", False, f"{type(exc).__name__}: {exc}"))
    for check in (keyring_check, *(extra or [])):
        try:
            checks.append(check())
        except Exception as exc:  # noqa: BLE001
            checks.append(Check(getattr(check, "__name__", "check"), False, f"{type(exc).__name__}: {exc}"))
    for check in checks:
        out(check.line())
    failed = [c for c in checks if not c.ok]
    out(f"self-test: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 0 if not failed else 1
