"""The `callsync` command line as a user runs it (real processes)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.fakes.ghl_server import Fault

ENV = os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}


async def callsync(*args: str, env: dict | None = None, stdin: bytes | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in (env or ENV).items() if not k.startswith("CALLSYNC_")} | {
            k: v for k, v in (env or {}).items() if k.startswith("CALLSYNC_")},
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode()


def crm_config(tmp_path, ghl, location=None) -> None:
    (tmp_path / "config.toml").write_text(
        f'[crm.ghl]\nlocation_id = "{location or ghl.location_id}"\nbase_url = "{ghl.base_url}"\n')


async def test_check_crm_verdicts(tmp_path, ghl):
    code, out = await callsync("check-crm", "--data-dir", str(tmp_path))
    assert code == 1 and "No location id" in out

    crm_config(tmp_path, ghl)
    code, out = await callsync("check-crm", "--data-dir", str(tmp_path))
    assert code == 1 and "No token" in out and "CALLSYNC_GHL_TOKEN" in out

    code, out = await callsync("check-crm", "--data-dir", str(tmp_path), env=ENV | {"CALLSYNC_GHL_TOKEN": ghl.token})
    assert code == 0 and out.startswith("OK: Connected to location") and ghl.location_id in out

    code, out = await callsync("check-crm", "--data-dir", str(tmp_path), env=ENV | {"CALLSYNC_GHL_TOKEN": "pit-bad"})
    assert code == 1 and "Token rejected (HTTP 401)" in out

    ghl.inject("location", Fault.status(503))
    code, out = await callsync("check-crm", "--data-dir", str(tmp_path), env=ENV | {"CALLSYNC_GHL_TOKEN": ghl.token})
    assert code == 1 and "HTTP 503" in out


async def test_dead_and_replay_on_a_store(tmp_path):
    code, out = await callsync("dead", "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, "no dead letters")

    import sqlite3
    import time

    conn = sqlite3.connect(tmp_path / "callsync.db")
    now = time.time()
    conn.execute("INSERT INTO calls (source, call_id, outcome, phone, updated_at) VALUES ('d', 'c1', 'busy', '+1202', ?)",
                 (now,))
    conn.execute("INSERT INTO jobs (source, call_id, status, attempts, failures, created_at, updated_at, last_error) "
                 "VALUES ('d', 'c1', 'dead', 3, 3, ?, ?, 'note: HTTP 422 body too long')", (now, now))
    conn.commit()
    conn.close()

    code, out = await callsync("dead", "--data-dir", str(tmp_path))
    assert code == 0 and "d/c1" in out and "HTTP 422 body too long" in out

    code, out = await callsync("replay", "--since", "yesterday", "--data-dir", str(tmp_path))
    assert code == 2 and "ISO 8601" in out
    code, out = await callsync("replay", "--dead", "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, "re-queued 1 job(s)")
    code, out = await callsync("dead", "--data-dir", str(tmp_path))
    assert out.strip() == "no dead letters"
    code, out = await callsync("replay", "--call", "d/c1", "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, "re-queued 1 job(s)")
    code, out = await callsync("replay", "--since", "2000-01-01T00:00:00Z", "--until", "2001-01-01T00:00:00Z",
                               "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, "re-queued 0 job(s)")


async def test_bad_config_and_missing_keyring_give_readable_errors(tmp_path):
    (tmp_path / "config.toml").write_text('[sources.d]\nkind = "jwt"\n')
    code, out = await callsync("serve", "--data-dir", str(tmp_path))
    assert code == 2 and "configuration error: sources.d.kind must be one of" in out

    code, out = await callsync("secret", "set", "source:d", stdin=b"value\n",
                               env=ENV | {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert code == 1 and "CALLSYNC_SECRET_D" in out


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["gui", "--help"]])
async def test_help_lists_the_contract_options(args):
    code, out = await callsync(*args)
    assert code == 0
    if args != ["--help"]:
        for option in ("--data-dir", "--host", "--port", "--admin-port"):
            assert option in out
