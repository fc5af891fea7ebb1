"""The `callsync` command line as a user runs it (real processes)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.ghl_server import Fault
from tests.serve_process import start_serve

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CALLSYNC_")} | {
    "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@dataclass
class Run:
    code: int | None
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


async def run_cli(*args: str, env: dict | None = None, stdin: bytes | None = None, timeout: float = 30) -> Run:
    """`callsync ARGS` (``python -m gui``, the launcher) with only the CALLSYNC_ variables given in ``env``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gui", *args, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=ENV | (env or {}),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        return Run(None, out.decode(), err.decode() + "\n[still running: killed by the test]")
    return Run(proc.returncode, out.decode(), err.decode())


async def callsync(*args: str, env: dict | None = None, stdin: bytes | None = None) -> tuple[int, str]:
    run = await run_cli(*args, env=env, stdin=stdin)
    return run.code, run.both


def assert_one_line_error(run: Run, *expected: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, every expected fragment on that line."""
    assert run.code == 2, run
    assert "Traceback" not in run.both, run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    for fragment in expected:
        assert fragment in lines[0], lines[0]


def crm_config(tmp_path, ghl, location=None, base_url=None) -> None:
    (tmp_path / "config.toml").write_text(
        f'[crm.ghl]\nlocation_id = "{location or ghl.location_id}"\nbase_url = "{base_url or ghl.base_url}"\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- item 12: configuration and start-up errors are one line, exit 2 ----------------------------

SERVE_ON_ANY_PORT = '[server]\nport = 0\nadmin_port = 0\n'


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[sources.dialer]\ntolerance_secs = 5\n', "[sources.dialer]: unknown key 'tolerance_secs' "
                                                  "(did you mean 'tolerance_seconds'?)"),
        ('[sources.dialer]\nsecret = "abc"\n', "secrets never go in config.toml"),
        ('[crm.ghl]\nlocation_id = "x"\nlocationid = "x"\n', "[crm.ghl]: unknown key 'locationid' "
                                                            "(did you mean 'location_id'?)"),
        ('[[rules]]\noutcome = "sale"\ntags = ["won"]\n', "[[rules]] #1: unknown key 'tags' "
                                                          "(did you mean 'add_tags' or 'remove_tags'?)"),
        ('[[rules]]\noutcome = "sale"\ntask_due_hours = "soon"\n', "[[rules]] #1: task_due_hours must be a number"),
        ('[[rules]]\noutcome = "sale"\nnote = "no"\n', "[[rules]] #1: note must be true or false"),
        ('[[rules]]\noutcome = "won"\n', "[[rules]] #1: outcome 'won' is not one of"),
        ('[crm.ghl]\nrate_limit = "fast"\n', "crm.ghl.rate_limit: invalid rate 'fast'"),
        ('[sever]\nport = 1\n', "unknown key 'sever' (did you mean 'server'?)"),
        ('[sources.d]\nkind = "jwt"\n', "sources.d.kind must be one of hmac, standard, twilio"),
        ('[server\nport = 1\n', "not valid TOML"),
    ],
)
async def test_configuration_errors_are_one_line_with_exit_2(tmp_path, text, expected):
    (tmp_path / "config.toml").write_text(text if text.startswith("[server") else SERVE_ON_ANY_PORT + text)
    run = await run_cli("serve", "--data-dir", str(tmp_path), env={"CALLSYNC_ADMIN_TOKEN": "t"}, timeout=20)
    assert_one_line_error(run, "callsync: configuration error:", str(tmp_path / "config.toml"), expected)


def _garbage_store(data_dir: Path) -> None:
    (data_dir / "callsync.db").write_bytes(b"this is not a database " * 200)


def _directory_store(data_dir: Path) -> None:
    (data_dir / "callsync.db").mkdir()


@pytest.mark.parametrize("make_store, expected", [
    (_garbage_store, "file is not a database"),
    (_directory_store, "unable to open database file"),
])
async def test_a_store_that_cannot_be_opened_is_one_line(tmp_path, make_store, expected):
    (tmp_path / "config.toml").write_text(SERVE_ON_ANY_PORT)
    make_store(tmp_path)
    for command in ("serve", "dead"):
        run = await run_cli(command, "--data-dir", str(tmp_path), env={"CALLSYNC_ADMIN_TOKEN": "t"}, timeout=20)
        assert_one_line_error(run, f"cannot open the store {tmp_path / 'callsync.db'}", expected)


async def test_a_data_dir_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    run = await run_cli("serve", "--data-dir", str(tmp_path / "a-file" / "data"), timeout=20)
    assert_one_line_error(run, "callsync: cannot start: the data dir", "is not writable")

    if os.geteuid() == 0:
        return  # root writes into read-only directories: the case above covers it
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (readonly / "config.toml").write_text(SERVE_ON_ANY_PORT)
    readonly.chmod(0o500)
    try:
        run = await run_cli("serve", "--data-dir", str(readonly), timeout=20)
    finally:
        readonly.chmod(0o700)
    assert_one_line_error(run, f"the data dir {readonly} is not writable")


# -- item 14: one callsync per data dir; a busy port is named ------------------------------------

async def test_second_instance_is_refused_naming_the_first_and_tools_still_work(tmp_path):
    (tmp_path / "config.toml").write_text(SERVE_ON_ANY_PORT + '[sources.dialer]\nkind = "hmac"\n')
    first, _, _ = await start_serve(tmp_path, {"CALLSYNC_ADMIN_TOKEN": "t"})
    try:
        second = await run_cli("serve", "--data-dir", str(tmp_path), env={"CALLSYNC_ADMIN_TOKEN": "t"}, timeout=20)
        assert_one_line_error(second, f"the data dir {tmp_path} is in use by another callsync (pid {first.pid}:",
                              "-m connector serve --data-dir")
        # Tools that read, or write through their own short transaction, still work meanwhile.
        run = await run_cli("dead", "--data-dir", str(tmp_path))
        assert (run.code, run.out.strip()) == (0, "no dead letters")
        run = await run_cli("replay", "--dead", "--data-dir", str(tmp_path))
        assert (run.code, run.out.strip()) == (0, "re-queued 0 job(s)")
        run = await run_cli("secret", "status", "--data-dir", str(tmp_path),
                            env={"CALLSYNC_SECRET_DIALER": "s", "CALLSYNC_ADMIN_TOKEN": "t"})
        assert run.code == 0 and "all required secrets are present" in run.out
        run = await run_cli("check-crm", "--data-dir", str(tmp_path))
        assert run.code == 1 and "No location id" in run.out
        assert first.poll() is None  # the first one never noticed
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(20)
    # Once it has stopped, the data dir is free again.
    again, _, _ = await start_serve(tmp_path, {"CALLSYNC_ADMIN_TOKEN": "t"})
    again.send_signal(signal.SIGTERM)
    assert again.wait(20) == 0


@pytest.mark.parametrize("option, what", [("--port", "hooks"), ("--admin-port", "admin")])
async def test_busy_port_asks_whether_callsync_is_already_running(tmp_path, option, what):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--admin-port" if option == "--port" else "--port"
        run = await run_cli("serve", "--data-dir", str(tmp_path), option, str(port), other, "0",
                            env={"CALLSYNC_ADMIN_TOKEN": "t"}, timeout=20)
    assert_one_line_error(run, f"{what} port {port} is in use — is callsync already running?", option)
    # The failed start released the data dir.
    proc, _, _ = await start_serve(tmp_path, {"CALLSYNC_ADMIN_TOKEN": "t"})
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


# -- item 13: options before or after the command; no command = the window -----------------------

async def test_data_dir_without_a_command_opens_the_window_on_that_dir(tmp_path):
    data = tmp_path / "my data"
    data.mkdir()
    (data / "config.toml").write_text(SERVE_ON_ANY_PORT)
    proc = subprocess.Popen([sys.executable, "-m", "gui", "--data-dir", str(data)], cwd=ROOT,
                            env=ENV | {"QT_QPA_PLATFORM": "offscreen", "CALLSYNC_ADMIN_TOKEN": "t"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        loop = asyncio.get_running_loop()
        deadline, seen = time.monotonic() + 60, []
        while time.monotonic() < deadline and proc.poll() is None:
            line = await loop.run_in_executor(None, proc.stdout.readline)
            seen.append(line)
            if re.search(r"hooks on http://127\.0\.0\.1:\d+/hooks/<source>", line):
                break
        else:
            pytest.fail("the window did not start:\n" + "".join(seen))
        assert (data / "callsync.db").exists() and (data / "callsync.lock").read_text().startswith(f"pid {proc.pid}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_the_window_reports_a_bad_config_in_one_line(tmp_path):
    (tmp_path / "config.toml").write_text('[server]\nprot = 1\n')
    run = await run_cli("--data-dir", str(tmp_path), env={"QT_QPA_PLATFORM": "offscreen"}, timeout=30)
    assert_one_line_error(run, "callsync: configuration error:", "[server]: unknown key 'prot' (did you mean 'port'?)")


async def test_options_before_and_after_the_command_reach_the_server(tmp_path):
    ports = [free_port(), free_port()]
    for args in (["--port", str(ports[0]), "serve", "--data-dir", str(tmp_path)],
                 ["--data-dir", str(tmp_path), "serve", "--port", str(ports[1])]):
        proc = subprocess.Popen([sys.executable, "-m", "connector", *args, "--admin-port", "0"], cwd=ROOT,
                                env=ENV | {"CALLSYNC_ADMIN_TOKEN": "t"}, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            port = args[args.index("--port") + 1]
            line = ""
            deadline = time.monotonic() + 30
            while "hooks on" not in line and time.monotonic() < deadline and proc.poll() is None:
                line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
            assert f"hooks on http://127.0.0.1:{port}/hooks/<source>" in line, args
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


# -- item 15: check-crm ------------------------------------------------------------------------

async def test_check_crm_verdicts(tmp_path, ghl):
    config = tmp_path / "config.toml"
    token = {"CALLSYNC_GHL_TOKEN": ghl.token}

    run = await run_cli("check-crm", "--data-dir", str(tmp_path))
    assert run.code == 1 and "No location id" in run.out
    assert f"config: {config} (no such file: defaults)" in run.out
    assert not config.exists()  # only serve and the window create a config

    crm_config(tmp_path, ghl)
    run = await run_cli("check-crm", "--data-dir", str(tmp_path))
    assert run.code == 1 and "No token" in run.out and "CALLSYNC_GHL_TOKEN" in run.out
    assert run.out.splitlines()[0] == f"config: {config}"

    run = await run_cli("check-crm", "--data-dir", str(tmp_path), env=token)
    assert run.code == 0 and f"OK: Connected to location" in run.out and ghl.location_id in run.out

    run = await run_cli("check-crm", "--data-dir", str(tmp_path), env={"CALLSYNC_GHL_TOKEN": "pit-bad"})
    assert run.code == 1 and "FAILED: GoHighLevel answered 401: Token rejected (HTTP 401)" in run.out

    ghl.inject("location", Fault.status(500))
    run = await run_cli("check-crm", "--data-dir", str(tmp_path), env=token)
    assert run.code == 1 and "FAILED: GoHighLevel answered 500" in run.out
    assert "could not connect" not in run.out.lower()


async def test_check_crm_tells_an_unreachable_crm_from_an_error_answer(tmp_path, ghl):
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    crm_config(tmp_path, ghl, base_url=unreachable)
    run = await run_cli("check-crm", "--data-dir", str(tmp_path), env={"CALLSYNC_GHL_TOKEN": ghl.token})
    assert run.code == 1 and f"FAILED: Could not connect to {unreachable}" in run.out
    assert "answered" not in run.out and "Traceback" not in run.both


async def test_tools_never_create_a_config_or_a_store(tmp_path):
    data = tmp_path / "nothing-here"
    for args in (["check-crm"], ["dead"], ["secret", "status"]):
        run = await run_cli(*args, "--data-dir", str(data))
        assert "Traceback" not in run.both and run.code in (0, 1), run
    run = await run_cli("replay", "--dead", "--data-dir", str(data))
    assert_one_line_error(run, "no store at")
    assert not data.exists()


# -- item 16: secret status --------------------------------------------------------------------

async def test_secret_status_lists_what_the_config_needs_and_where_it_was_found(tmp_path, ghl):
    (tmp_path / "config.toml").write_text(
        '[sources.dialer]\nkind = "hmac"\n[sources.tw]\nkind = "twilio"\n'
        f'[crm.ghl]\nlocation_id = "{ghl.location_id}"\n')
    env = {"CALLSYNC_SECRET_DIALER": "s1", "CALLSYNC_GHL_TOKEN": "pit"}
    run = await run_cli("secret", "status", "--data-dir", str(tmp_path), env=env | NO_KEYRING)
    assert run.code == 1, run
    rows = {line.split()[0]: line for line in run.out.splitlines() if line.startswith("  ")}
    assert list(rows) == ["source:dialer", "source:dialer:previous", "source:tw", "source:tw:previous",
                          "crm:ghl", "admin:token"]
    assert "environment (CALLSYNC_SECRET_DIALER)" in rows["source:dialer"]
    assert "missing" in rows["source:dialer:previous"] and "optional" in rows["source:dialer:previous"]
    assert "missing" in rows["source:tw"] and "CALLSYNC_SECRET_TW" in rows["source:tw"]
    assert "environment" in rows["crm:ghl"] and "missing" in rows["admin:token"]
    assert "2 required secret(s) missing: source:tw, admin:token" in run.out
    assert "No usable OS keyring" in run.out

    env |= {"CALLSYNC_SECRET_TW": "s2", "CALLSYNC_ADMIN_TOKEN": "t"}
    run = await run_cli("secret", "status", "--data-dir", str(tmp_path), env=env | NO_KEYRING)
    assert run.code == 0 and "all required secrets are present" in run.out  # :previous stays optional


async def test_secret_without_a_keyring_points_to_the_environment(tmp_path):
    run = await run_cli("secret", "set", "source:d", stdin=b"value\n", env=NO_KEYRING)
    assert run.code == 1 and "CALLSYNC_SECRET_D" in run.err and "Traceback" not in run.both


# -- replay and dead letters on a store ---------------------------------------------------------

async def test_dead_and_replay_on_a_store(tmp_path):
    code, out = await callsync("dead", "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, "no dead letters")

    from connector.store.schema import prepare

    prepare(str(tmp_path / "callsync.db"))
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


# -- item 17: --help ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["gui", "--help"], ["check-crm", "--help"],
                                  ["replay", "--help"], ["dead", "--help"], ["secret", "--help"]])
async def test_help_of_every_command(args):
    run = await run_cli(*args)
    assert run.code == 0 and run.out.startswith("usage: callsync")
    if args[0] in ("--help", "serve", "gui"):
        for option in ("--data-dir", "--host", "--port", "--admin-port"):
            assert option in run.out
