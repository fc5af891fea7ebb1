"""The window after downtime: the dashboard says when callsync was off and how many calls were filled in
from Twilio, Events shows each event's origin, Calls marks calls left incomplete."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from connector import secrets
from connector.store import gaps as store_gaps
from connector.store.db import open_sqlite
from connector.store.migrations import migrate
from tests.conftest import TWILIO_TOKEN
from tests.fakes.twilio_fixture import twilio_api  # noqa: F401 - the fixture
from tests.gui.conftest import until

pytestmark = pytest.mark.gui


def column(model, key: str) -> int:
    return [k for _, k in model.columns].index(key)


async def test_gap_sentence_origins_and_incomplete_calls(qtbot, tmp_path, start_service, open_window, twilio_api):
    now = time.time()
    db = open_sqlite(str(tmp_path / "callsync.db"))
    migrate(db)
    with db.transaction():  # callsync ran until two hours ago, then was off
        store_gaps.begin_stretch(db, now - 3 * 3600)
        store_gaps.beat(db, now - 3 * 3600, now - 2 * 3600)
    db.close()
    twilio_api.credentials[twilio_api.account_sid] = TWILIO_TOKEN
    filled = twilio_api.add(start=datetime.now(timezone.utc) - timedelta(hours=1))
    secrets.set_secret("source:twilio", TWILIO_TOKEN)
    stale = "call-" + uuid.uuid4().hex[:8]
    service = await start_service(crm=False, token=None, sources={
        "twilio": {"kind": "twilio", "reconcile": True, "account_sid": twilio_api.account_sid,
                   "api_url": twilio_api.url},
        "dialer": {"kind": "hmac"}})
    secrets.set_secret("source:twilio", TWILIO_TOKEN)  # start_service set the test secret for every source
    service.reconciler.run_soon("twilio")
    await until(lambda: service.reconciler.runs.get("twilio", 0) >= 1, what="reconciled")
    import aiohttp

    from tests.conftest import SECRET
    from tests.signing import dumps, hmac_headers

    body = dumps({"event": "call.initiated", "call_uuid": stale, "from": "+12025551234", "to": "+4930123456789",
                  "direction": "outbound", "initiated_at": (datetime.now(timezone.utc) - timedelta(minutes=30))
                  .strftime("%Y-%m-%dT%H:%M:%SZ")})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 200

    window = open_window(service)
    banner = window.dashboard.gap_notice
    await until(lambda: banner.isVisibleTo(window.dashboard), what="gap banner")
    assert banner.text.text().startswith("callsync was off from ")
    assert banner.text.text().endswith("; 1 call filled in from Twilio; other sources cannot be back-filled — "
                                       "check their delivery logs.")

    window.select_tab("events")
    events = window.events.model
    await until(lambda: len(events.rows) == 2, what="two events")
    origin = column(events, "origin")
    shown = {events.rows[r]["call_id"]: events.data(events.index(r, origin)) for r in range(len(events.rows))}
    assert shown == {filled["sid"]: "call log (reconciled)", stale: "webhook"}

    window.select_tab("calls")
    calls = window.calls.model
    await until(lambda: len(calls.rows) == 2, what="two calls")
    status = column(calls, "status")
    shown = {calls.rows[r]["call_id"]: calls.data(calls.index(r, status)) for r in range(len(calls.rows))}
    assert shown == {filled["sid"]: "completed", stale: "initiated (incomplete)"}
