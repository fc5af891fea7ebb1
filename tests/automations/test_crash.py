"""End to end over real HTTP with a real `callsync serve` process: signed events in -> alert stored -> the
Apprise json:// sink and the fake dialer get the notification and the action within 5 s, exactly once,
also across kill -9 and restart (killed right after the tripping event was acknowledged, after a
delivery was recorded, and while the dialer was down)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.automations.sinks import Sink, wait_for
from tests.automations.test_service import ended
from tests.serve_process import start_serve
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.slow
SECRET = "automation-crash-secret"
DEADLINE = 5.0


def write_config(data_dir: Path, dialer: Sink, apprise: Sink) -> None:
    (data_dir / "config.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.dialer]
kind = "hmac"

[automations.abandon]
window = 20
min_calls = 10
notify_at = 10.0
act_at = 15.0
on_act = "lower_pacing"

[automations.caller_id]
home = ["US", "CA"]
pool = {{ DE = ["+4930901820"] }}

[actions.lower_pacing]
url = "{dialer.url}/campaigns/{{campaign}}/pacing"
headers = {{ Authorization = "Bearer {{secret}}" }}
json = {{ campaign = "{{campaign}}", abandon_rate = "{{rate}}" }}

[alerts]
notify = ["json://127.0.0.1:{apprise.port}/alerts"]
retry_schedule = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
""")


class Serve:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.hooks = self.admin = 0

    async def start(self) -> None:
        self.proc, self.hooks, self.admin = await start_serve(self.data_dir, {
            "CALLSYNC_SECRET_DIALER": SECRET, "CALLSYNC_ACTION_LOWER_PACING": "dialer-key",
            "CALLSYNC_ADMIN_TOKEN": "admin"})

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)

    async def post(self, http: aiohttp.ClientSession, body: bytes) -> None:
        async with http.post(f"http://127.0.0.1:{self.hooks}/hooks/dialer", data=body,
                             headers=hmac_headers(body, SECRET)) as resp:
            assert resp.status == 200, await resp.text()

    async def alerts(self, http: aiohttp.ClientSession) -> list[dict]:
        async with http.get(f"http://127.0.0.1:{self.admin}/api/alerts") as resp:
            return (await resp.json())["alerts"]

    async def deliveries(self, http: aiohttp.ClientSession, alert_id: str) -> list[dict]:
        async with http.get(f"http://127.0.0.1:{self.admin}/api/alerts/{alert_id}") as resp:
            return (await resp.json())["deliveries"]

    async def settled(self, http: aiohttp.ClientSession, alert_id: str, sinks: int, kind: str = "") -> None:
        """Wait until every delivery (of ``kind``) of the alert is recorded as done (nothing in flight to kill):
        a delivery cut by kill -9 is tried again, so a sink may see it twice - under the same id."""
        deadline = time.monotonic() + 10
        while True:
            found = [d for d in await self.deliveries(http, alert_id) if not kind or d["kind"] == kind]
            if len(found) == sinks and all(d["status"] == "done" for d in found):
                return
            assert time.monotonic() < deadline, found
            await wait_for(lambda: True, 0.05)


def dialled(call_id: str, to: str) -> bytes:
    return dumps({"event": "call.initiated", "call_uuid": call_id, "from": "+12025550100", "to": to,
                  "direction": "outbound", "initiated_at": "2026-06-04T09:14:22Z"})


async def test_alerts_reach_the_sinks_once_across_kill_9(tmp_path):
    dialer, apprise = await Sink().start(), await Sink().start()
    write_config(tmp_path, dialer, apprise)
    serve = Serve(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            # 1. Killed right after the event that trips the warning was acknowledged: the alert was stored
            #    before the kill, or is raised at start-up under the same id.  One notification either way.
            #    The sink is down meanwhile (whatever was tried before the kill failed).
            apprise.failures = 1000
            await serve.start()
            for n in range(9):
                await serve.post(http, ended(n, "SALE"))
            await serve.post(http, ended(9, "DROP"))  # 1 / 10 = 10 %
            serve.kill9()
            apprise.failures = 0
            await serve.start()
            started = time.monotonic()
            await wait_for(lambda: len(apprise.accepted()) == 1, DEADLINE, "the warning after the restart")
            assert time.monotonic() - started < DEADLINE
            [warning] = await serve.alerts(http)
            assert warning["level"] == "notify" and apprise.accepted()[0].json()["alert_id"] == warning["id"]
            await serve.settled(http, warning["id"], 1)

            # 2. The action level: the fake dialer and the sink within 5 s; killed once both are recorded.
            started = time.monotonic()
            await serve.post(http, ended(10, "DROP"))  # 2 / 11 = 18 %
            await wait_for(lambda: len(dialer.requests) == 1 and len(apprise.accepted()) == 2, DEADLINE, "the action")
            assert time.monotonic() - started < DEADLINE
            act = (await serve.alerts(http))[0]
            assert act["level"] == "act" and dialer.requests[0].headers["Idempotency-Key"] == act["id"]
            assert dialer.requests[0].json() == {"campaign": "Q1 Sales", "abandon_rate": 18.182}
            assert dialer.requests[0].headers["Authorization"] == "Bearer dialer-key"
            await serve.settled(http, act["id"], 2)
            serve.kill9()

            # 3. The dialer is down when the next action is due; callsync is killed after its first failed
            #    try; the dialer comes back, the restarted callsync delivers the action within 5 s, once.
            await serve.start()
            await serve.post(http, dialled("intl-1", "+493012345678"))  # a US caller ID to Germany
            await wait_for(lambda: len(apprise.accepted()) == 3, DEADLINE, "the caller-ID notification")
            mismatch = (await serve.alerts(http))[0]
            assert mismatch["recipe"] == "caller_id" and "+4930901820" in mismatch["message"]
            await serve.settled(http, mismatch["id"], 1)
            for n in range(11, 40):  # both abandoned calls leave the window: 0 %, both levels re-armed
                await serve.post(http, ended(n, "SALE"))
            dialer.failures = 1000
            await serve.post(http, ended(40, "DROP"))  # 1 / 20 = 5 %
            await serve.post(http, ended(41, "DROP"))  # 2 / 20 = 10 %: the warning again
            await serve.post(http, ended(42, "DROP"))  # 3 / 20 = 15 %: the action again, the dialer answers 503
            await wait_for(lambda: len(dialer.requests) >= 2 and len(apprise.accepted()) == 5, DEADLINE,
                           "a failed try of the second action, and both notifications")
            for alert in (await serve.alerts(http))[:2]:  # no notification in flight when it is killed
                await serve.settled(http, alert["id"], 1, kind="notify")
            serve.kill9()
            dialer.failures = 0
            await serve.start()
            started = time.monotonic()
            await wait_for(lambda: len(dialer.accepted()) == 2, DEADLINE, "the second action after the restart")
            assert time.monotonic() - started < DEADLINE
            second = dialer.accepted()[1].headers["Idempotency-Key"]
            assert {r.headers["Idempotency-Key"] for r in dialer.requests[1:]} == {second}  # every try, one id
            await serve.settled(http, second, 2)

            # A last alert as a sentinel: once it arrives, anything redelivered would have arrived too.
            await serve.post(http, dialled("intl-2", "+442071234567"))
            deadline = time.monotonic() + DEADLINE
            while "intl-2" not in (alerts := await serve.alerts(http))[0]["message"]:
                assert time.monotonic() < deadline, alerts[0]
            await wait_for(lambda: any(r.json()["alert_id"] == alerts[0]["id"] for r in apprise.accepted()), DEADLINE,
                           "the sentinel")
            await serve.settled(http, alerts[0]["id"], 1)
        notified = Counter(r.json()["alert_id"] for r in apprise.accepted())
        assert set(notified) == {a["id"] for a in alerts} and set(notified.values()) == {1}
        assert {r.json()["alert_id"] for r in apprise.requests} == set(notified)  # failed tries: the same ids
        acted = Counter(r.headers["Idempotency-Key"] for r in dialer.accepted())
        assert acted == Counter({act["id"]: 1, second: 1})
        assert [a["level"] for a in alerts if a["recipe"] == "abandon"] == ["act", "notify", "act", "notify"]
    finally:
        serve.stop()
        await dialer.stop()
        await apprise.stop()
