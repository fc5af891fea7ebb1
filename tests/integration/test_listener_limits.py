"""Hooks listener limits with real sockets: header and idle timeouts, a connection cap, and a bounded
log when file descriptors run out (a `callsync serve` child with a low RLIMIT_NOFILE)."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from connector.app import Service
from tests.conftest import SECRET, make_config
from tests.signing import dumps, hmac_headers

HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS = 1.0, 4.0, 5  # header checks end before the idle timeout


@pytest.fixture
async def limited(tmp_path, source_secrets):
    config = make_config(tmp_path, sources={"dialer": {"kind": "hmac"}}, server={
        "header_timeout_seconds": HEADER_TIMEOUT, "idle_timeout_seconds": IDLE_TIMEOUT,
        "max_connections": MAX_CONNECTIONS})
    service = Service(config)
    await service.start()
    yield service
    await service.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes the connection; (closed in time?, what it sent)."""
    deadline = time.monotonic() + seconds
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, data
        except ConnectionResetError:
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def signed_request(keep_alive: bool = True) -> bytes:
    body = dumps({"event": "agent.login", "data": {"agent": "a"}})
    headers = hmac_headers(body, SECRET) | {"Content-Length": str(len(body)), "Host": "127.0.0.1"}
    if not keep_alive:
        headers["Connection"] = "close"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST /hooks/dialer HTTP/1.1\r\n{head}\r\n".encode() + body


async def test_half_a_header_then_silence_is_closed_within_the_header_timeout(limited):
    sock = connect(limited.hooks_port)
    sock.sendall(b"POST /hooks/dialer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    closed, _ = await in_thread(closed_within, sock, HEADER_TIMEOUT * 2.5)
    assert closed, "a client that stalls inside its headers keeps its connection"
    sock.close()


async def test_a_client_dripping_its_header_is_still_closed(limited):
    sock = connect(limited.hooks_port)
    started = time.monotonic()

    def drip() -> bool:
        try:
            for byte in b"POST /hooks/dialer HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                sock.send(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            return True
        return closed_within(sock, HEADER_TIMEOUT * 2.5)[0]

    assert await in_thread(drip)
    assert time.monotonic() - started < HEADER_TIMEOUT * 2.5
    sock.close()


async def test_idle_keep_alive_connection_is_closed_and_so_is_a_late_second_request(limited):
    for second in (b"", b"POST /hooks/dialer HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
        sock = connect(limited.hooks_port)
        sock.sendall(signed_request())
        first = await in_thread(sock.recv, 65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.sendall(second)
        closed, _ = await in_thread(closed_within, sock, IDLE_TIMEOUT * 2)
        assert closed, f"idle connection left open (then sent {second!r})"
        sock.close()


async def test_a_slow_body_gets_408(limited):
    sock = connect(limited.hooks_port)
    sock.sendall(b"POST /hooks/dialer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"X-Webhook-Signature: 00\r\nContent-Length: 100\r\n\r\n{\"event\"")
    closed, data = await in_thread(closed_within, sock, HEADER_TIMEOUT * 3)
    assert closed and data.startswith(b"HTTP/1.1 408"), data
    sock.close()


async def test_connections_beyond_the_cap_are_refused_then_served_again(limited):
    held = [connect(limited.hooks_port) for _ in range(MAX_CONNECTIONS)]
    for sock in held:  # each is served: the cap counts them
        sock.sendall(signed_request())
        assert (await in_thread(sock.recv, 65536)).startswith(b"HTTP/1.1 200")
    extra = connect(limited.hooks_port)
    closed, data = await in_thread(closed_within, extra, 3)
    assert closed, "a connection beyond max_connections was kept open"
    assert data == b"" or data.startswith(b"HTTP/1.1 503"), data
    extra.close()
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while True:  # the cap frees up as connections close
        sock = connect(limited.hooks_port)
        sock.sendall(signed_request(keep_alive=False))
        _, data = await in_thread(closed_within, sock, 3)
        sock.close()
        if data.startswith(b"HTTP/1.1 200"):
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.05)


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))


@pytest.mark.slow
async def test_out_of_file_descriptors_logs_a_line_per_interval_not_a_flood(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\nadmin_port = 0\nmax_connections = 10000\n'
        'idle_timeout_seconds = 60\nheader_timeout_seconds = 60\n\n[sources.dialer]\nkind = "hmac"\n')
    log_path = tmp_path / "serve.log"
    env = os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "CALLSYNC_SECRET_DIALER": SECRET,
                        "CALLSYNC_ADMIN_TOKEN": "t"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--data-dir", str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=log, env=env, text=True, preexec_fn=_low_fd_limit)
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            match = re.search(r"hooks on http://127\.0\.0\.1:(\d+)", await in_thread(proc.stdout.readline))
            port = int(match.group(1)) if match else None
        assert port, "callsync serve did not start"
        before = log_path.read_text().count("\n")
        clients = []
        for _ in range(200):  # far more than 96 descriptors
            try:
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        await asyncio.sleep(4)  # the server is out of descriptors all this time
        text = log_path.read_text()
        lines = text.splitlines()[before:]
        assert "Traceback" not in text, text[-3000:]
        assert len(lines) <= 5, f"{len(lines)} log lines in 4 s:\n" + "\n".join(lines[:20])
        assert any("open-file limit" in line for line in lines), lines
        for sock in clients:
            sock.close()

        async def served() -> int:
            body = dumps({"event": "agent.login", "data": {"agent": "a"}})
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/hooks/dialer", data=body,
                                     headers=hmac_headers(body, SECRET)) as resp:
                    return resp.status

        deadline = time.monotonic() + 20
        while True:  # descriptors come back: served again
            try:
                if await served() == 200:
                    break
            except (aiohttp.ClientError, OSError):
                pass
            assert time.monotonic() < deadline, "not served again after descriptors came back"
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
