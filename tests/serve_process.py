"""`callsync serve` as a real child process, for crash tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"hooks on http://127\.0\.0\.1:(\d+).*admin on http://127\.0\.0\.1:(\d+)")


async def start_serve(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int, int]:
    """Start it (secrets from ``env``, never a keyring) and return (process, hooks port, admin port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"} | env,
        text=True,
    )
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = await loop.run_in_executor(None, proc.stdout.readline)
        match = READY.search(line)
        if match:
            return proc, int(match.group(1)), int(match.group(2))
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("callsync serve did not start")
