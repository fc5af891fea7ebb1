"""A throwaway PostgreSQL cluster for the tests, started from the server binaries on this machine.

``make test`` installs Debian's ``postgresql`` package where it is missing (packaging/sysdeps.sh);
its binaries live in ``/usr/lib/postgresql/<version>/bin``.  The session fixture ``pg_cluster``
runs ``initdb`` into a temp dir and starts a server that listens on a Unix socket in that dir
only (no TCP port, no network), with ``fsync`` and ``synchronous_commit`` on like a real server;
it is stopped at the end of the session.  PostgreSQL refuses to run as root: as root the
cluster belongs to the ``postgres`` system user (``nobody`` when there is none).

``pg_url`` is a fresh, empty database per test.  Without the binaries the PostgreSQL tests are
skipped with the reason, unless ``CALLSYNC_TEST_POSTGRES=required`` (set by ``make test``), which
makes that a failure: there they must run.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SUPERUSER = "postgres"
PORT = 5432  # only names the socket file, in a directory of its own
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: ``CALLSYNC_PG_BINDIR``, the newest
    Debian ``/usr/lib/postgresql/<version>/bin``, or the one ``pg_config`` names."""
    candidates = []
    if os.environ.get("CALLSYNC_PG_BINDIR"):
        candidates.append(os.environ["CALLSYNC_PG_BINDIR"])
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             check=True).stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    for directory in candidates:
        if all(os.access(os.path.join(directory, name), os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    return None


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: this user, or as root a system user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


class Cluster:
    """One ``initdb``-ed data directory and its running server."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.account = _server_account()
        self.root = Path(tempfile.mkdtemp(prefix="callsync-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._databases = itertools.count(1)
        self.running = False
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)

    @property
    def socket_dir(self) -> str:
        return str(self.root)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.root)}
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
                              env=env, cwd=self.root, timeout=120, **kwargs)

    def start(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                         "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        settings = dict(SETTINGS, port=str(PORT), unix_socket_directories=f"'{self.socket_dir}'")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()} {log}")
        self.running = True
        atexit.register(self.stop)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def restart(self, timeout: float = 30.0) -> None:
        """Start the server again after it stopped (or was killed: its old backends may take a moment
        to notice and exit, and until then the new server refuses to start)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start again: {done.stderr.strip()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "t") -> tuple[str, str]:
        """A new empty database: ``(name, url)``."""
        name = f"{prefix}_{os.getpid()}_{next(self._databases)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster_or_skip() -> Cluster:
    """A started cluster; skips (or fails, where PostgreSQL is required) without the binaries."""
    bindir = find_bindir()
    if bindir is None:
        reason = ("PostgreSQL server binaries not found (Debian: apt-get install postgresql, which "
                  "`make test` does; or set CALLSYNC_PG_BINDIR)")
        if os.environ.get("CALLSYNC_TEST_POSTGRES") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = Cluster(bindir)
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = start_cluster_or_skip()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster):
    """The URL of a fresh, empty database on the test cluster (dropped after the test)."""
    name, url = pg_cluster.create_database()
    yield url
    try:
        pg_cluster.drop_database(name)
    except Exception:  # noqa: BLE001 - a leftover database in a throwaway cluster is harmless
        pass
