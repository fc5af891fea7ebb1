"""The real entry point: `callsync gui` is one process running window, receiver and worker, and stops cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import SECRET
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]


def test_gui_command_serves_webhooks_in_one_process_and_stops_cleanly(tmp_path):
    (tmp_path / "config.toml").write_text(
        "# mine\n[server]\nport = 0\nadmin_port = 0\n\n[sources.dialer]\nkind = \"hmac\"\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSYNC_")} | {
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",  # never the developer's keyring
        "CALLSYNC_SECRET_DIALER": SECRET,
    }
    proc = subprocess.Popen([sys.executable, "-m", "gui", "gui", "--data-dir", str(tmp_path)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:  # a silent or hung child fails at the deadline
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            found = re.search(r"hooks on (http://\S+)/hooks/<source>", line)
            url = found and found.group(1)
        assert url, "the window did not start the receiver"
        body = dumps({"event": "call.initiated", "call_uuid": "proc-1", "from": "+12025550100",
                      "to": "+12025550171", "direction": "outbound"})
        request = urllib.request.Request(f"{url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET))
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        assert psutil.Process(proc.pid).children(recursive=True) == []  # no second process
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(tmp_path / "callsync.db")
    assert conn.execute("SELECT call_id FROM events").fetchall() == [("proc-1",)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
