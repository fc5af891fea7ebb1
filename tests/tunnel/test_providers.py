"""The providers' own side: ngrok errors as the real SDK raises them (mapped to one sentence each),
the real SDK failing to reach its service, and cloudflared started, read and stopped as a real
child process (a stand-in executable on PATH that prints cloudflared's log lines)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
import textwrap

import pytest

from connector.tunnel import base
from connector.tunnel.cloudflared import NOT_FOUND, CloudflaredProvider, classify_exit, command
from connector.tunnel.ngrok_provider import NO_TOKEN, NgrokProvider, ngrok_error


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def down(self, reason: str) -> None:
        self.seen.append(("down", reason))

    def back(self) -> None:
        self.seen.append(("back", ""))

    def ended(self, reason: str) -> None:
        self.seen.append(("ended", reason))


# The shapes the SDK raises: ValueError(message, detail[, "ERR_NGROK_<n>"]).
NGROK_CASES = [
    (("failed to connect session", "failed to establish tcp connection"), base.NO_NETWORK, True,
     "ngrok cannot be reached (no internet connection?): callsync keeps receiving locally and connects when the "
     "network is back."),
    (("failed to connect session", "tls handshake error"), base.NO_NETWORK, True, "ngrok cannot be reached"),
    (("failed to connect session", "authentication failed: The authtoken you specified does not look like a proper "
      "ngrok tunnel authtoken.\nYour authtoken: abc", "ERR_NGROK_105"), base.BAD_TOKEN, False,
     "ngrok rejected the authtoken (ERR_NGROK_105): copy it again from "
     "https://dashboard.ngrok.com/get-started/your-authtoken and save it with `callsync secret set tunnel:ngrok` "
     "(or NGROK_AUTHTOKEN)."),
    (("failed to connect session", "authentication failed: The authtoken you specified is properly formed, but it is "
      "invalid.", "ERR_NGROK_107"), base.BAD_TOKEN, False, "ngrok rejected the authtoken (ERR_NGROK_107)"),
    (("failed to connect session", "authentication failed: Usage of ngrok requires a verified account and authtoken.",
      "ERR_NGROK_4018"), base.NO_ACCOUNT, False, "ngrok needs a free account: sign up at "),
    (("failed to connect session", "Your account is limited to 1 simultaneous ngrok agent sessions.",
      "ERR_NGROK_108"), base.REFUSED, False, "Your ngrok account already has an agent running elsewhere"),
    (("failed to start listener", "The domain 'x.ngrok-free.app' is not reserved for your account.",
      "ERR_NGROK_320"), base.REFUSED, False,
     "ngrok refused the tunnel for the domain x.ngrok-free.app (ERR_NGROK_320): The domain "),
    (("failed to start listener", "something unexpected"), base.FAILED, True,
     "ngrok could not open the tunnel: something unexpected"),
]


@pytest.mark.parametrize("args,kind,retry,sentence", NGROK_CASES)
def test_ngrok_errors_are_one_sentence_each(args, kind, retry, sentence):
    error = ngrok_error(ValueError(*args), domain="x.ngrok-free.app")
    assert (error.kind, error.retry) == (kind, retry)
    assert error.message.startswith(sentence)
    assert "\n" not in error.message


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_the_real_sdk_without_its_service_is_no_network():
    provider = NgrokProvider("2abcdefghijklmnopqrstuvwxyz_0123456789", server_addr=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(base.TunnelError) as caught:
        await provider.open("127.0.0.1:9", Events())
    assert caught.value.kind == base.NO_NETWORK and caught.value.retry
    assert provider.session is None and provider.listener is None


async def test_no_authtoken_is_said_before_anything_is_sent():
    with pytest.raises(base.TunnelError) as caught:
        await NgrokProvider(None).open("127.0.0.1:9", Events())
    assert caught.value.kind == base.NO_ACCOUNT and not caught.value.retry
    assert caught.value.message == NO_TOKEN


FAKE_CLOUDFLARED = r'''#!{python}
import os, signal, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_CF_ARGS"], "w") as f:
    f.write(" ".join(args))
mode = os.environ.get("FAKE_CF_MODE", "quick")
def log(line):
    sys.stderr.write("2026-11-30T10:00:00Z " + line + "\n"); sys.stderr.flush()
if mode == "offline":
    log("INF Requesting new quick Tunnel on trycloudflare.com...")
    log('ERR failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp: lookup '
        'api.trycloudflare.com on 127.0.0.53:53: no such host')
    sys.exit(1)
if mode == "nologin":
    log("ERR Cannot determine default origin certificate path. No file cert.pem in [~/.cloudflared]. You need to "
        "specify the origin certificate path by specifying the origincert option")
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if mode == "quick":
    log("INF Requesting new quick Tunnel on trycloudflare.com...")
    log("INF +--------------------------------------------------------------------------------------------+")
    log("INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |")
    log("INF |  https://bright-sound-wave-tone.trycloudflare.com                                          |")
    log("INF +--------------------------------------------------------------------------------------------+")
log("INF Registered tunnel connection connIndex=0 connection=5f0d event=0 ip=198.41.200.13 location=ams01 "
    "protocol=quic")
if os.environ.get("FAKE_CF_FLAP"):
    time.sleep(0.2)
    log('ERR Connection terminated error="timeout: no recent network activity" connIndex=0')
    time.sleep(0.2)
    log("INF Registered tunnel connection connIndex=0 connection=77aa event=0 ip=198.41.200.13 location=ams01 "
        "protocol=quic")
if os.environ.get("FAKE_CF_EXIT"):
    time.sleep(0.2)
    log("ERR Serve tunnel error error=\"connection lost\"")
    sys.exit(3)
while True:
    time.sleep(1)
'''


@pytest.fixture
def fake_cloudflared(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "cloudflared"
    exe.write_text(FAKE_CLOUDFLARED.replace("{python}", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CF_ARGS", str(tmp_path / "args"))
    return tmp_path / "args"


async def wait_for(predicate, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_cloudflared_quick_tunnel_url_is_read_from_its_log_and_it_is_stopped(fake_cloudflared):
    provider = CloudflaredProvider()
    url = await provider.open("127.0.0.1:8787", Events())
    assert url == "https://bright-sound-wave-tone.trycloudflare.com"
    assert fake_cloudflared.read_text() == "tunnel --no-autoupdate --url http://127.0.0.1:8787"
    process = provider.process
    assert process is not None and process.returncode is None
    await provider.close()
    assert process.returncode is not None  # callsync stopped it


async def test_cloudflared_named_tunnel_uses_its_hostname(fake_cloudflared, monkeypatch):
    monkeypatch.setenv("FAKE_CF_MODE", "named")
    provider = CloudflaredProvider("callsync", "hooks.example.com")
    try:
        assert await provider.open("127.0.0.1:8787", Events()) == "https://hooks.example.com"
        assert fake_cloudflared.read_text() == "tunnel --no-autoupdate run --url http://127.0.0.1:8787 callsync"
    finally:
        await provider.close()


async def test_cloudflared_drop_and_return_and_exit_are_reported(fake_cloudflared, monkeypatch):
    monkeypatch.setenv("FAKE_CF_FLAP", "1")
    monkeypatch.setenv("FAKE_CF_EXIT", "1")
    events = Events()
    provider = CloudflaredProvider()
    await provider.open("127.0.0.1:8787", events)
    await wait_for(lambda: any(kind == "ended" for kind, _ in events.seen))
    kinds = [kind for kind, _ in events.seen]
    assert kinds == ["down", "back", "ended"]
    assert events.seen[0][1].startswith("cloudflared lost its connection (")
    assert events.seen[2][1].startswith("cloudflared stopped (exit status 3): ")
    await provider.close()


@pytest.mark.parametrize("mode,kind,sentence", [
    ("offline", base.NO_NETWORK, "Cloudflare cannot be reached (no internet connection?)"),
    ("nologin", base.NO_ACCOUNT, "The named tunnel needs a Cloudflare login: run `cloudflared tunnel login`"),
])
async def test_cloudflared_failures_are_one_sentence(fake_cloudflared, monkeypatch, mode, kind, sentence):
    monkeypatch.setenv("FAKE_CF_MODE", mode)
    with pytest.raises(base.TunnelError) as caught:
        await CloudflaredProvider().open("127.0.0.1:8787", Events())
    assert caught.value.kind == kind and caught.value.message.startswith(sentence)


async def test_cloudflared_absent_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(base.TunnelError) as caught:
        await CloudflaredProvider().open("127.0.0.1:8787", Events())
    assert caught.value.kind == base.NOT_INSTALLED and not caught.value.retry
    assert caught.value.message == NOT_FOUND and "ngrok" in NOT_FOUND


def test_cloudflared_command_and_exit_reasons_table():
    assert command("/bin/cf", "127.0.0.1:1", "") == ["/bin/cf", "tunnel", "--no-autoupdate", "--url",
                                                     "http://127.0.0.1:1"]
    assert classify_exit(["INF starting", "ERR boom happened"], 1).message == (
        "cloudflared stopped (exit status 1): ERR boom happened")
    assert classify_exit([], None).message == "cloudflared stopped: no output"
    assert classify_exit(["ERR tunnel credentials file not found"], 1, "prod").message.endswith(
        "`cloudflared tunnel create prod` once.")
