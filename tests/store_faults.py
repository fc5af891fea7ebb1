"""Real storage faults for tests: another process holding the write lock, a full disk (small tmpfs),
a filesystem that turned read-only after an error (ext4 on a loop device), a frozen filesystem
(fsfreeze).  Mounting needs root; tests skip with the reason when the machine does not allow it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_lock_held(db_path: Path | str) -> Iterator[subprocess.Popen]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the store until the block ends."""
    child = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(db_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield child
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=10)


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


def _mount_or_skip(*command: str) -> None:
    result = _run(*command)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(command)}: {result.stderr.strip() or result.returncode})")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (a disk that fills up)."""
    path.mkdir(parents=True, exist_ok=True)
    _mount_or_skip("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


@contextlib.contextmanager
def loop_ext4(path: Path, image: Path, size_mb: int = 16) -> Iterator[str]:
    """An ext4 filesystem in ``image`` on a loop device mounted on ``path`` (errors=remount-ro);
    yields the device name (``loop3``)."""
    path.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 not usable here: {made.stderr.strip()}")
    _mount_or_skip("mount", "-o", "loop,errors=remount-ro", str(image), str(path))
    device = os.path.basename(_run("findmnt", "-n", "-o", "SOURCE", str(path)).stdout.strip())
    try:
        yield device
    finally:
        _run("fsfreeze", "-u", str(path))
        _run("umount", "-l", str(path))


@contextlib.contextmanager
def frozen(path: Path) -> Iterator[None]:
    """The filesystem at ``path`` frozen (every write blocks) until the block ends."""
    result = _run("fsfreeze", "-f", str(path))
    if result.returncode != 0:
        pytest.skip(f"fsfreeze not possible here: {result.stderr.strip()}")
    try:
        yield
    finally:
        _run("fsfreeze", "-u", str(path))


def fail_ext4(device: str) -> None:
    """Make ext4 report an error: with errors=remount-ro every later write fails (EROFS)."""
    trigger = Path(f"/sys/fs/ext4/{device}/trigger_fs_error")
    if not trigger.exists():
        pytest.skip("this kernel has no ext4 trigger_fs_error")
    trigger.write_text("callsync test: simulated disk error\n")


def fill_disk(path: Path) -> Path:
    """Write a file on ``path`` until the filesystem is full; returns it (delete it to free the space)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
