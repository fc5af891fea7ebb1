"""A crash in the middle of a CRM job: `callsync serve` killed with SIGKILL while a write is in
flight, restarted; the job completes with no second note and no double-counted callback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.ghl_server import Fault
from tests.serve_process import start_serve
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.slow
SECRET = "crash-sync-secret"


def write_config(data_dir: Path, ghl) -> None:
    (data_dir / "config.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = 0
admin_port = 0

[sources.dialer]
kind = "hmac"

[crm.ghl]
location_id = "{ghl.location_id}"
base_url = "{ghl.base_url}"
lease_seconds = 1.0
retry_schedule = [0.1, 0.2, 0.5]
""")


async def start_server(data_dir: Path, ghl) -> tuple[subprocess.Popen, int, int]:
    return await start_serve(data_dir, {"CALLSYNC_SECRET_DIALER": SECRET, "CALLSYNC_GHL_TOKEN": ghl.token})


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def metrics(admin_port: int) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{admin_port}/api/metrics") as resp:
            return await resp.json()


async def crash_during(tmp_path: Path, ghl, kind: str, body: bytes, phone: str) -> None:
    ghl.inject(kind, Fault.timeout(1.5, perform=True))  # the write lands after the client is gone
    proc, port, _ = await start_server(tmp_path, ghl)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                 headers=hmac_headers(body, SECRET)) as resp:
                assert resp.status == 200
        await wait_for(lambda: ghl.count(kind) >= 1, what=f"a {kind} request")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    await ghl.quiet()  # the in-flight write is applied by the CRM now

    proc, _, admin_port = await start_server(tmp_path, ghl)
    try:
        deadline = time.monotonic() + 20
        while True:
            m = await metrics(admin_port)
            if m["pending"] == 0 and m["processed"] >= 1:
                break
            assert time.monotonic() < deadline, m
            await asyncio.sleep(0.1)
        assert m["dead"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


async def test_kill_9_while_posting_the_note_gives_one_note(tmp_path, ghl):
    write_config(tmp_path, ghl)
    phone = "+12025550301"
    body = dumps({"event": "call.completed", "call_uuid": "crash-note-1", "from": "+12025550000", "to": phone,
                  "direction": "outbound", "duration_seconds": 61})
    await crash_during(tmp_path, ghl, "note", body, phone)
    contact = ghl.contact_by_phone(phone)
    assert len(ghl.notes[contact["id"]]) == 1
    assert ghl.count("notes.list") >= 1  # the unknown outcome was checked, not re-posted


async def test_kill_9_after_counting_a_callback_counts_it_once(tmp_path, ghl):
    write_config(tmp_path, ghl)
    phone = "+12025550302"
    body = dumps({"event": "call.failed", "call_uuid": "crash-cb-1", "from": "+12025550000", "to": phone,
                  "direction": "outbound", "sip_response_code": 480, "hangup_cause": "no_answer"})
    await crash_during(tmp_path, ghl, "fields", body, phone)
    contact = ghl.contact_by_phone(phone)
    assert ghl.custom_value(contact["id"], "contact.callback_count") in (1, "1")
    assert len(ghl.notes[contact["id"]]) == 1
    assert "no answer" in contact["tags"]
