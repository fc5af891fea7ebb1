"""`callsync serve --tunnel` and `callsync status` as a user runs them (real processes, the real ngrok SDK
provider: without an authtoken it must say so in one sentence and keep receiving locally)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tomllib

from connector.tunnel.ngrok_provider import NO_TOKEN
from tests.integration.test_cli import ENV, ROOT, free_port, run_cli
from tests.signing import dumps, hmac_headers

SECRET = "cli-tunnel-secret"


async def read_until(proc: subprocess.Popen, pattern: str, timeout: float = 30) -> list[str]:
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), deadline - time.monotonic())
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if pattern in line:
            return lines
    raise AssertionError(f"{pattern!r} not printed; got {lines}")


async def test_status_when_nothing_runs(tmp_path):
    port = free_port()
    (tmp_path / "config.toml").write_text(f"[server]\nadmin_port = {port}\n")
    run = await run_cli("status", "--data-dir", str(tmp_path))
    assert run.code == 3
    assert run.out.strip() == f"callsync is not running (nothing answers on its admin port 127.0.0.1:{port})"
    run = await run_cli("status", "--json", "--data-dir", str(tmp_path))
    assert run.code == 3 and json.loads(run.out) == {"running": False, "admin_port": port}


async def test_serve_tunnel_without_an_ngrok_account_says_so_keeps_receiving_and_status_prints_it(tmp_path):
    import aiohttp

    hooks, admin = free_port(), free_port()
    (tmp_path / "config.toml").write_text(
        f'[server]\nport = {hooks}\nadmin_port = {admin}\n\n[sources.dialer]\nkind = "hmac"\n')
    env = {k: v for k, v in ENV.items() if k != "NGROK_AUTHTOKEN"} | {"CALLSYNC_SECRET_DIALER": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--tunnel", "--data-dir", str(tmp_path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = await read_until(proc, "callsync: tunnel (ngrok): ")
        assert f"callsync: tunnel (ngrok): {NO_TOKEN} (the local receiver keeps running)" in lines
        # remembered like the window's switch
        saved = tomllib.loads((tmp_path / "config.toml").read_text())
        assert saved["tunnel"] == {"provider": "ngrok", "enabled": True}
        body = dumps({"event": "call.initiated", "call_uuid": "cli-tunnel-1", "from": "+12025551234",
                      "to": "+4930123456789"})
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:  # the ready line may come after the tunnel's
                try:
                    async with http.post(f"http://127.0.0.1:{hooks}/hooks/dialer", data=body,
                                         headers=hmac_headers(body, SECRET)) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
        run = await run_cli("status", "--data-dir", str(tmp_path), env=env)
        assert run.code == 1, run
        assert run.out.splitlines() == [f"callsync is running (admin API on 127.0.0.1:{admin})", "health: ok",
                                        f"tunnel: ngrok error: {NO_TOKEN}"]
        run = await run_cli("status", "--json", "--data-dir", str(tmp_path), env=env)
        data = json.loads(run.out)
        assert data["tunnel"] == {"provider": "ngrok", "state": "error", "public_url": None, "error": NO_TOKEN}
        assert data["health"]["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_serve_tunnel_names_a_provider_and_refuses_an_unknown_one(tmp_path):
    run = await run_cli("serve", "--tunnel", "localtunnel", "--data-dir", str(tmp_path))
    assert run.code == 2 and "the tunnel provider is one of ngrok, cloudflared, got 'localtunnel'" in run.err
    assert "Traceback" not in run.err
    (tmp_path / "config.toml").write_text('[tunnel]\nprovider = "ngrok"\ndomain = "calls.ngrok-free.app"\n'
                                          'enabled = false\n')
    from connector.cli_status import enable_tunnel
    from connector.config import load_config

    config = load_config(tmp_path, create=False)
    enable_tunnel(config, "cloudflared")
    saved = tomllib.loads((tmp_path / "config.toml").read_text())
    assert saved["tunnel"] == {"provider": "cloudflared", "enabled": True}  # ngrok's domain does not apply
    assert config.tunnel.provider == "cloudflared" and config.tunnel.active
    config = load_config(tmp_path, create=False)
    enable_tunnel(config, "")
    assert tomllib.loads((tmp_path / "config.toml").read_text())["tunnel"]["provider"] == "cloudflared"
