"""Start-up checks that end in one readable sentence: :class:`StartupError`.

The command line prints the message as one line (exit 2); the window shows it in a dialog.
:class:`DataDirLock` keeps a second callsync off a data dir that one already serves.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from pathlib import Path
from typing import BinaryIO

LOCK_NAME = "callsync.lock"
# Windows locks byte ranges and refuses to read a locked range: lock a byte far past the text.
_WINDOWS_LOCK_OFFSET = 1 << 20
_ADDRESS_IN_USE = {errno.EADDRINUSE, 10048}  # 10048: WSAEADDRINUSE


class StartupError(Exception):
    """callsync cannot start; the message (one line) says why and what to do."""


def _lock(handle: BinaryIO) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(_WINDOWS_LOCK_OFFSET)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle: BinaryIO) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(_WINDOWS_LOCK_OFFSET)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def this_process() -> str:
    """``pid <n>: <command line>`` of this process, as the lock file records it."""
    command = shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return f"pid {os.getpid()}: {command[:300]}"


class DataDirLock:
    """An OS lock on ``DATA_DIR/callsync.lock`` held while a Service runs; the file names the holder.

    The kernel drops the lock when the holder exits, even on ``kill -9``: a stale file never blocks."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._handle: BinaryIO | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the life of the service
        except OSError as exc:
            raise StartupError(f"the data dir {self.data_dir} is not writable: {exc.strerror or exc}") from exc
        try:
            _lock(handle)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read(400).decode("utf-8", "replace").strip() or "a process that has not written its pid yet"
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                raise StartupError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
            raise StartupError(
                f"the data dir {self.data_dir} is in use by another callsync ({holder}); "
                "stop that one first, or give this one another --data-dir"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(this_process().encode() + b"\n")
            handle.flush()
        except OSError as exc:
            _unlock(handle)
            handle.close()
            raise StartupError(f"the data dir {self.data_dir} is not writable: {exc.strerror or exc}") from exc
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()  # the next reader sees no stale pid
            _unlock(handle)
        except OSError:
            pass
        finally:
            handle.close()


def listen_error(exc: OSError, what: str, host: str, port: int, setting: str, option: str) -> StartupError:
    """One sentence for a listener that could not bind (busy port, unknown address, no permission)."""
    if exc.errno in _ADDRESS_IN_USE:
        return StartupError(
            f"{what} port {port} is in use — is callsync already running? "
            f"(or set [server] {setting} in config.toml, or pass {option})"
        )
    return StartupError(f"cannot listen on {host}:{port} for the {what}: {exc.strerror or exc}")
