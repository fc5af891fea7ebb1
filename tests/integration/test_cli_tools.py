"""`callsync --version`, `--self-test`, `doctor`, `export` and `serve --log-format json` as real processes."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys

import aiohttp

from connector.version import VERSION
from tests.conftest import SECRET
from tests.integration.test_cli import ENV, callsync
from tests.integration.test_receiver import unlimcall
from tests.signing import dumps, hmac_headers


async def test_version_and_self_test():
    code, out = await callsync("--version")
    assert code == 0 and out.strip() == f"callsync {VERSION}"
    code, out = await callsync("--self-test", env=ENV | {"QT_QPA_PLATFORM": "offscreen"})
    assert code == 0, out
    assert "self-test: 6 of 6 checks passed" in out and "Traceback" not in out
    assert "[ok  ] CRM queue: 1 sync job(s) queued" in out


async def test_doctor_exit_code_and_json(tmp_path):
    (tmp_path / "config.toml").write_text('[sources.dialer]\nkind = "hmac"\n')
    code, out = await callsync("doctor", "--data-dir", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failed == {"secret source:dialer", "secret admin:token"}
    env = ENV | {"CALLSYNC_SECRET_DIALER": SECRET, "CALLSYNC_ADMIN_TOKEN": "t"}
    code, out = await callsync("doctor", "--data-dir", str(tmp_path), env=env)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("doctor: ") and "to fix" not in out


async def _serve(tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    (tmp_path / "config.toml").write_text(
        '[server]\nport = 0\nadmin_port = 0\n[sources.dialer]\nkind = "hmac"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--data-dir", str(tmp_path), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                          "CALLSYNC_SECRET_DIALER": SECRET, "CALLSYNC_ADMIN_TOKEN": "t"},
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 30)
        assert line, "serve ended before it was ready"
        if "hooks on" in line:
            return proc, int(line.split("hooks on http://127.0.0.1:")[1].split("/")[0])


async def test_export_while_serving_and_json_logs(tmp_path):
    proc, port = await _serve(tmp_path, "--log-format", "json")
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                body = dumps(unlimcall(call_uuid=f"exp-{i}"))
                async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                     headers=hmac_headers(body, SECRET)) as resp:
                    assert resp.status == 200
            async with http.post(f"http://127.0.0.1:{port}/hooks/nosuch", data=b"{}",
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 404
        code, out = await callsync("export", "calls", "--data-dir", str(tmp_path), "--out", str(tmp_path / "c.csv"))
        assert code == 0 and out.strip() == f"wrote 3 calls to {tmp_path / 'c.csv'}"
        with open(tmp_path / "c.csv", newline="", encoding="utf-8") as f:
            assert sorted(r["call_id"] for r in csv.DictReader(f)) == ["exp-0", "exp-1", "exp-2"]
        code, out = await callsync("export", "events", "--data-dir", str(tmp_path), "--since", "soon",
                                   "--out", str(tmp_path / "e.csv"))
        assert code == 2 and out.strip() == "callsync: export: since must be ISO 8601, e.g. 2026-06-04T09:00:00Z"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no log output"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in entries)
    assert any("callsync listening" in e["event"] for e in entries)
