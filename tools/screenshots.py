"""``python -m tools.screenshots OUTDIR`` (from the repository root; ``make screenshots``): render every
tab with realistic data into PNG files.

Starts a real Service on a temporary data dir (random ports) against an
in-process fake GoHighLevel (tests/fakes), posts a few hundred signed events of
four sender kinds through the real receiver over HTTP (spread over the last
three hours with a shifted clock, so the charts have a history), lets the sync
worker write them to the fake CRM (with a few injected rejections, so there are
dead letters), then grabs each tab.  Secrets live in an in-memory keyring: the
real one is never touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget

import qasync  # after PySide6

import aiohttp
import keyring
from keyring.backends import fail

from connector import secrets
from connector.app import Service
from connector.config import parse_config
from connector.facade import Facade
from connector.sync.settings import DEFAULT_RULES
from connector.test_events import sign_request
from connector.window_export import default_path
from tests.fakes.ghl_server import FakeGhl, Fault
from tests.memory_keyring import MemoryKeyring

WINDOW_SIZE = (1280, 800)
HOURS = 3.0
PUBLIC_URL = "https://callsync-demo.trycloudflare.com"
SOURCES = {
    "dialer": {"kind": "hmac"},
    "dialercx": {"kind": "hmac", "signature_encoding": "base64", "timestamp_header": "X-Webhook-Timestamp"},
    "std": {"kind": "standard"},
    "twilio": {"kind": "twilio"},
}
SECRETS = {
    "dialer": "demo-dialer-secret-7c1f",
    "dialercx": "demo-dialercx-secret-93ab",
    "std": "whsec_ZGVtby1zdGFuZGFyZC13ZWJob29rcy1rZXktMzI=",
    "twilio": "demo-twilio-auth-token-0a1b2c3d",
}
AGENTS = ("maria", "jsmith", "dkim", "apatel", "lnguyen")
CAMPAIGNS = ("renewals", "Q3-outbound", "win-back")


# A rule of one's own before the defaults: won deals of the outbound campaign get a contract task.
RULES = [{"outcome": ["sale"], "disposition": ["SALE", "SOLD"], "campaign": ["Q3-outbound"],
          "add_tags": ["call connected", "sale", "won Q3"], "remove_tags": ["no answer"], "callback": "reset",
          "task": "Send the contract", "task_due_hours": 2.0}] + [
    {"outcome": r.outcome, "add_tags": r.add_tags, "remove_tags": r.remove_tags, "note": r.note,
     "callback": r.callback, **({"task": r.task, "task_due_hours": r.task_due_hours} if r.task else {})}
    for r in DEFAULT_RULES]


class ShiftedClock:
    """Real time minus ``shift`` seconds: events land in the past, latencies stay real."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() - self.shift


@dataclass(slots=True)
class Request:
    source: str
    body: bytes
    content_type: str


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _phone(rng: random.Random) -> str:
    return f"+1{rng.choice(('202', '312', '415', '512', '646', '718'))}55501{rng.randint(0, 99):02d}"


def _json(source: str, payload: dict[str, Any]) -> Request:
    return Request(source, json.dumps(payload, separators=(",", ":")).encode(), "application/json")


def unlimcall_call(rng: random.Random, now: float) -> list[Request]:
    call_id, phone = str(uuid.uuid4()), _phone(rng)
    base = {"call_uuid": call_id, "from": "+12025550148", "to": phone, "direction": "outbound",
            "initiated_at": _iso(now - 60), "seat_id": f"seat_{rng.randint(1, 24):02d}", "did_id": "did_us_0412",
            "campaign": rng.choice(CAMPAIGNS)}
    out = [_json("dialer", {"event": "call.initiated"} | base)]
    roll = rng.random()
    if roll < 0.45:
        talk = rng.randint(25, 420)
        out.append(_json("dialer", {"event": "call.answered", "answered_at": _iso(now - 50)} | base))
        out.append(_json("dialer", {"event": "call.completed", "answered_at": _iso(now - 50),
                                    "ended_at": _iso(now - 50 + talk), "duration_seconds": talk,
                                    "hangup_cause": "normal_clearing", "hangup_cause_code": 16} | base))
    elif roll < 0.7:
        out.append(_json("dialer", {"event": "call.completed", "ended_at": _iso(now - 20), "duration_seconds": 0,
                                    "hangup_cause": "no_answer", "hangup_cause_code": 19} | base))
    elif roll < 0.85:
        out.append(_json("dialer", {"event": "call.failed", "ended_at": _iso(now - 55), "duration_seconds": 0,
                                    "hangup_cause": "user_busy", "hangup_cause_code": 17,
                                    "sip_response_code": 486} | base))
    else:
        out.append(_json("dialer", {"event": "call.voicemail.detected", "answered_at": _iso(now - 50),
                                    "detected_at": _iso(now - 47)} | base))
    return out


def dialercx_call(rng: random.Random, now: float) -> list[Request]:
    call_id, phone = str(rng.randint(100_000, 999_999)), _phone(rng)[2:]
    data = {"call_id": call_id, "agent": rng.choice(AGENTS), "phone_number": phone, "campaign": "Q3-outbound"}
    disposition = rng.choice(("SALE", "CONNECTED", "NA", "NA", "B", "VM", "DROP", "CALLBK"))
    talk = rng.randint(40, 600) if disposition in ("SALE", "CONNECTED", "CALLBK") else 0
    return [
        _json("dialercx", {"event": "call.started", "timestamp": _iso(now - 60), "data": data}),
        _json("dialercx", {"event": "call.ended", "timestamp": _iso(now),
                           "data": data | {"duration": talk, "disposition": disposition}}),
    ]


def standard_call(rng: random.Random, now: float) -> list[Request]:
    call_id, phone = "call_" + uuid.uuid4().hex[:8], _phone(rng)
    data = {"call_id": call_id, "from": "+14155550100", "to": phone, "direction": "outbound",
            "agent": rng.choice(AGENTS), "campaign": "renewals"}
    out = [_json("std", {"type": "call.ringing", "timestamp": _iso(now - 40), "data": data})]
    if rng.random() < 0.6:
        talk = rng.randint(30, 300)
        out.append(_json("std", {"type": "call.completed", "timestamp": _iso(now), "data": data | {
            "initiated_at": _iso(now - 45), "answered_at": _iso(now - 35), "ended_at": _iso(now - 35 + talk),
            "duration": talk, "disposition": "Contact"}}))
    else:
        out.append(_json("std", {"type": "call.no_answer", "timestamp": _iso(now),
                                 "data": data | {"initiated_at": _iso(now - 45), "sip_code": 480}}))
    return out


def twilio_call(rng: random.Random, now: float) -> list[Request]:
    sid, phone = "CA" + uuid.uuid4().hex, _phone(rng)
    base = {"CallSid": sid, "AccountSid": "AC0123456789abcdef0123456789abcdef", "From": "+15005550006",
            "To": phone, "Direction": "outbound-api", "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events"}
    final = rng.choice(("completed", "completed", "no-answer", "busy"))
    steps = ["initiated", "ringing"] + (["in-progress"] if final == "completed" else []) + [final]
    out = []
    for seq, status in enumerate(steps):
        form = base | {"CallStatus": status, "SequenceNumber": str(seq)}
        if status == final:
            form |= {"CallDuration": str(rng.randint(20, 240) if final == "completed" else 0),
                     "SipResponseCode": {"completed": "200", "no-answer": "487", "busy": "486"}[final]}
        out.append(Request("twilio", urlencode(form).encode(), "application/x-www-form-urlencoded"))
    return out


CALL_MAKERS = (unlimcall_call, unlimcall_call, dialercx_call, standard_call, twilio_call)

# Windows small enough for a few hundred calls to fill them; the DE and GB numbers of the caller-ID pool.
AUTOMATIONS = {
    "did_burn": {"window": 30, "min_calls": 10, "baseline_window": 300},
    "abandon": {"window": 100, "min_calls": 5},
    "carrier": {"window": 50, "min_calls": 10},
    "caller_id": {"pool": {"DE": ["+493040817700"], "GB": ["+442079460000"]}},
}


async def floor_traffic(service: Service) -> None:
    """Agents logging in and pausing (one pause over the limit), and international dials with a US caller ID."""
    now = time.time()
    requests = []
    for n, agent in enumerate(AGENTS):
        requests.append(_json("dialercx", {"event": "agent.login", "timestamp": _iso(now - 3 * 3600 + n * 300),
                                           "data": {"agent": agent}, "id": f"login-{agent}"}))
        for k, (start, length) in enumerate(((90 + 20 * n, 6 + n), (40 - 5 * n, 0 if n == 1 else 4))):
            requests.append(_json("dialercx", {"event": "agent.pause", "timestamp": _iso(now - start * 60),
                                               "data": {"agent": agent}, "id": f"pause-{agent}-{k}"}))
            if length:
                requests.append(_json("dialercx", {"event": "agent.resume",
                                                   "timestamp": _iso(now - (start - length) * 60),
                                                   "data": {"agent": agent}, "id": f"resume-{agent}-{k}"}))
    for to in ("+4930901820", "+442071234567", "+33142685300"):
        requests.append(_json("dialer", {"event": "call.initiated", "call_uuid": str(uuid.uuid4()), "to": to,
                                         "from": "+12025550148", "direction": "outbound", "did_id": "did_us_0412",
                                         "initiated_at": _iso(now - 30), "campaign": "win-back"}))
    async with aiohttp.ClientSession() as http:
        for request in requests:
            await post(http, service, request)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(r["name"] == "pause" and r["tripped"]
                                                  for r in service.automations.status()):
        await asyncio.sleep(0.2)  # the paused agent's alert comes from the 5 s check
    await asyncio.sleep(0.5)


async def post(http: aiohttp.ClientSession, service: Service, request: Request, *, secret: str | None = None) -> int:
    source = service.config.sources[request.source]
    path = f"/hooks/{request.source}"
    msg_id = "msg_" + hashlib.sha256(request.body).hexdigest()[:24]  # a retry reuses the message id
    headers = sign_request(source, secret or SECRETS[request.source], request.body, request.content_type,
                           service.config.server.public_url + path, service.clock(), msg_id=msg_id)
    async with http.post(service.hooks_url + path, data=request.body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def settle(service: Service, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = await service.metrics()
        if not metrics.get("pending"):
            return
        await asyncio.sleep(0.02)


async def fill(service: Service, ghl: Any, clock: ShiftedClock, *, calls: int = 80, seed: int = 7) -> None:
    """Post realistic signed traffic through the real receiver; the worker syncs it to the fake GHL."""
    rng = random.Random(seed)
    sent: list[Request] = []
    async with aiohttp.ClientSession() as http:
        for index in range(calls):
            # Two dialing sessions (a morning block and the last hour), a few calls in between.
            position = index / calls
            session = 0.05 + position * 0.6 if position < 0.5 else 0.55 + (position - 0.5) * 0.9
            clock.shift = max(5.0, HOURS * 3600 * (1 - session) - rng.uniform(0, 60))
            if index in (23, 47, 66):
                ghl.inject("note", Fault.status(422, {"message": "Note body exceeds the allowed length",
                                                      "statusCode": 422}))
            for request in rng.choice(CALL_MAKERS)(rng, clock()):
                await post(http, service, request)
                sent.append(request)
            await settle(service)
        clock.shift = 0.0
        for request in rng.sample(sent, 6):  # senders retry: duplicates are acknowledged, not stored twice
            await post(http, service, request)
        for request in rng.sample(sent, 3):  # a misconfigured sender: wrong secret
            await post(http, service, request, secret="not-the-secret")
        await settle(service)


async def grab(window: QWidget, path: Path, dialog: QWidget | None = None) -> None:
    """The window as it looks; with ``dialog``, that dialog over the window (framed, with a shadow)."""
    await asyncio.sleep(0.4)
    QApplication.processEvents()
    image = window.grab().toImage()
    if dialog is not None:
        image = image.convertToFormat(QImage.Format.Format_RGB32)
        top = dialog.grab().toImage()
        x, y = (image.width() - top.width()) // 2, (image.height() - top.height()) // 3
        painter = QPainter(image)
        painter.fillRect(x + 6, y + 6, top.width(), top.height(), QColor("#90a4ae"))
        painter.drawImage(x, y, top)
        painter.setPen(QColor("#546e7a"))
        painter.drawRect(x - 1, y - 1, top.width() + 1, top.height() + 1)
        painter.end()
    small = image.convertToFormat(QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.ThresholdDither
                                  | Qt.ImageConversionFlag.AvoidDither)
    small.save(str(path), "PNG", 9)


async def render(outdir: Path) -> list[Path]:
    from gui.window import MainWindow

    outdir.mkdir(parents=True, exist_ok=True)
    keyring.set_keyring(MemoryKeyring())
    secrets.invalidate_cache()
    # Three hours of traffic are replayed in seconds: lift GHL's burst limit so its bucket does not
    # turn into latency spikes that would never happen at the real pace.
    ghl = await FakeGhl(rate="10000/10s").start()
    data_dir = Path(tempfile.mkdtemp(prefix="callsync-screenshots-"))
    config = parse_config({
        "server": {"host": "127.0.0.1", "port": 0, "admin_port": 0, "public_url": PUBLIC_URL},
        "sources": SOURCES,
        "crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url, "retry_schedule": [0.05],
                         "rate_limit": "10000/10s"}},
        "rules": RULES,
        "automations": AUTOMATIONS,
    }, data_dir)
    for name, value in SECRETS.items():
        secrets.set_secret(secrets.source_user(name), value)
    secrets.set_secret("crm:ghl", ghl.token)
    clock = ShiftedClock()
    service = Service(config, clock=clock)
    await service.start()
    written: list[Path] = []
    try:
        await fill(service, ghl, clock)
        facade = Facade(service)
        window = MainWindow(facade)
        window.resize(*WINDOW_SIZE)
        window.show()
        window.start()
        await window.refresh()

        async def shot(name: str) -> None:
            path = outdir / f"{name}.png"
            await grab(window, path)
            written.append(path)

        await shot("dashboard")
        window.select_tab("events")
        await window.events.reload()
        completed = next((r for r in window.events.model.rows
                          if r.get("outcome") == "connected" and r["source"] == "dialer"), None)
        if completed:
            window.events.select_event(completed["id"])
            await asyncio.sleep(0.3)
            window.events.inspector.tabs.setCurrentIndex(0)
        await shot("events")
        window.events.inspector.tabs.setCurrentIndex(3)
        await shot("events-delivery-log")
        events = window.events  # Export… with a filter of the tab, over the last 7 days
        events.source.setCurrentIndex(events.source.findData("dialer"))
        await events.reload()
        export = events.exporter.open_dialog(events.export_scope())
        export.range.setCurrentIndex(2)
        export.path.setText(str(default_path(Path("/home/maria/Documents"), "events", "csv", time.time())))
        await grab(window, outdir / "export.png", export)
        written.append(outdir / "export.png")
        export.reject()
        events.source.setCurrentIndex(0)
        window.select_tab("calls")
        await window.calls.reload()
        rows = window.calls.model.rows
        window.calls.table.selectRow(next((i for i, c in enumerate(rows)
                                           if c["source"] == "std" and c["outcome"] == "connected"), 1))
        await asyncio.sleep(0.3)
        await shot("calls")
        window.select_tab("dead_letters")
        await window.dead_letters.reload()
        await shot("dead-letters")
        await floor_traffic(service)
        window.select_tab("automations")
        await window.automations.reload()
        window.automations.alert_table.selectRow(0)
        await asyncio.sleep(0.3)
        await shot("automations")
        window.select_tab("sources")
        window.sources.reload(select="dialercx")
        await window.sources.on_send_test()
        await shot("sources")
        window.select_tab("crm")
        await window.crm.on_test()
        await shot("crm")
        window.select_tab("dashboard")
        about = window.show_about()
        await grab(window, outdir / "about.png", about)
        written.append(outdir / "about.png")
        about.close()
        window.stack.setCurrentWidget(window.setup)
        window.resize(960, 600)
        await shot("setup")
        window.hide()
        await window.aclose()

        # A machine without an OS keyring: the banner, secret fields disabled, the environment instead.
        keyring.set_keyring(fail.Keyring())
        secrets.invalidate_cache()
        bare = MainWindow(Facade(service))
        bare.resize(*WINDOW_SIZE)
        bare.show()
        bare.start()
        await bare.refresh()
        bare.select_tab("sources")
        bare.sources.reload(select="dialer")
        await grab(bare, outdir / "no-keyring.png")
        written.append(outdir / "no-keyring.png")
        bare.hide()
        await bare.aclose()
    finally:
        await service.stop()
        await ghl.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0] if args else "docs/screenshots")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    written = qasync.run(render(outdir))
    for path in written:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
