"""``callsync doctor``: everything a support call would check, as a checklist with a fix per failure.

Works with callsync stopped or running (it only reads the store and asks the running
instance's admin API).  "No OS keyring, secrets from the environment" is a note, not a
failure; so is a public URL that is only loopback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from connector.config import Config

LOW_SPACE_BYTES = 100 * 1024 * 1024
WARN_SPACE_BYTES = 1024 * 1024 * 1024
MAX_SKEW_SECONDS = 60.0  # signed timestamps are checked against a 300 s window; stay well inside it


@dataclass(slots=True)
class Item:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    note: bool = False

    def lines(self) -> list[str]:
        mark = "ok  " if self.ok and not self.note else ("note" if self.ok else "FAIL")
        out = [f"[{mark}] {self.name}: {self.detail}"]
        if self.fix:
            out.append(f"       fix: {self.fix}")
        return out


def check_keyring() -> Item:
    from connector import secrets

    usable, message = secrets.keyring_usable()
    return Item("keyring", True, message, note=not usable)


def check_secrets(config: Config) -> list[Item]:
    from connector import secrets
    from connector.cli_tools import required_secrets

    items = []
    keyring_ok, _ = secrets.keyring_usable()
    for user, required in required_secrets(config):
        _, where = secrets.lookup(user)
        env = secrets.env_name(user)
        if where in ("keyring", "environment"):
            items.append(Item(f"secret {user}", True, f"found in the {where}" + (f" ({env})" if where == "environment" else "")))
        elif required:
            fix = (f"run `callsync secret set {user}` or set {env} in the environment" if keyring_ok
                   else f"set {env} in the environment callsync starts with (there is no OS keyring here)")
            items.append(Item(f"secret {user}", False, where, fix=fix))
    return items


def check_data_dir(config: Config) -> list[Item]:
    path = config.data_dir
    if not path.is_dir():
        return [Item("data dir", False, f"{path} does not exist", fix="start callsync once: it creates it")]
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True):
            pass
    except OSError as exc:
        return [Item("data dir", False, f"{path} is not writable ({exc.strerror})",
                     fix=f"give this user write access to {path}, or use --data-dir")]
    free = shutil.disk_usage(path).free
    space = f"{free / 1024**3:.1f} GiB free"
    if free < LOW_SPACE_BYTES:
        return [Item("data dir", False, f"{path}: only {free // 1024**2} MiB free",
                     fix="free disk space: webhooks are refused (503) when the store cannot grow")]
    return [Item("data dir", True, f"{path} is writable, {space}", note=free < WARN_SPACE_BYTES)]


def check_postgres_store(config: Config) -> Item:
    """Server mode: the database answers, takes writes, and its schema is one this callsync knows."""
    from connector.store import pg_schema
    from connector.store.postgres import PgProbe, open_postgres

    target = config.store_target
    where = target.describe()
    try:
        db = open_postgres(target.url or "", readonly=True)
        try:
            version = pg_schema.version(db)
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 - psycopg: cannot connect, wrong password, no database
        return Item("store", False, f"{where} cannot be reached: {' '.join(str(exc).split())}",
                    fix="check the URL ([store] url, --store-url or CALLSYNC_STORE_URL) and the password "
                        "(`callsync secret set store` or CALLSYNC_STORE_PASSWORD)")
    problem = PgProbe(target.url or "")()
    if problem:
        return Item("store", False, f"{where}: {problem}", fix="point the store URL at the primary server")
    if version > len(pg_schema.MIGRATIONS):
        return Item("store", False, f"{where} has schema version {version}, newer than this callsync",
                    fix="upgrade callsync")
    if version == 0:
        return Item("store", True, f"{where} is empty (the first start creates the tables)", note=True)
    return Item("store", True, f"{where} answers and takes writes (schema version {version})")


def check_store(config: Config) -> Item:
    if config.store.url:
        return check_postgres_store(config)
    path = config.db_path
    if not path.exists():
        return Item("store", True, f"{path.name} not created yet (the first start creates it)", note=True)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            result = [row[0] for row in conn.execute("PRAGMA quick_check")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Item("store", False, f"{path} cannot be read: {exc}",
                    fix="restore the file from a backup, or move it away to start with an empty store")
    if result != ["ok"]:
        return Item("store", False, f"{path} is damaged: {'; '.join(result[:3])}",
                    fix="stop callsync, copy the file, and run `sqlite3 callsync.db .recover` into a new file")
    return Item("store", True, f"{path.name} passes quick_check (schema version {version})")


async def _running_health(admin_port: int) -> dict[str, Any] | None:
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(f"http://127.0.0.1:{admin_port}/healthz") as resp:
                return await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def check_ports(config: Config) -> list[Item]:
    srv = config.server
    health = await _running_health(srv.admin_port)
    if isinstance(health, dict) and "ok" in health:
        if health.get("ok"):
            return [Item("ports", True, f"callsync is running: hooks on {srv.host}:{srv.port}, admin on "
                                        f"127.0.0.1:{srv.admin_port}, healthy")]
        reason = health.get("reason") or "see the window's dashboard"
        return [Item("ports", False, f"callsync is running but unhealthy: {reason}",
                     fix="open the window or GET /healthz on the admin port for details")]
    items = []
    listeners = (("hooks port", srv.host, srv.port, "[server] port / --port"),
                 ("admin port", "127.0.0.1", srv.admin_port, "[server] admin_port / --admin-port"))
    for label, host, port, setting in listeners:
        if _port_free(host, port):
            items.append(Item(label, True, f"{host}:{port} is free for callsync"))
        else:
            items.append(Item(label, False, f"{host}:{port} is in use by another program",
                              fix=f"stop that program or choose another port ({setting})"))
    return items


def check_public_url(config: Config) -> Item:
    url = config.server.public_url
    if not url and config.tunnel.active:
        return Item("public URL", True, f"from the {config.tunnel.provider} tunnel ([tunnel]); `callsync status` "
                                        "shows whether it is up")
    if not url:
        return Item("public URL", True, "none set: only this machine can reach the hooks listener", note=True,
                    fix="switch on the public HTTPS URL in Sources, or `callsync serve --tunnel`")
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return Item("public URL", True, f"{url} is only reachable from this machine", note=True,
                    fix="senders on the internet need a tunnel's https URL")
    if not url.startswith("https://"):
        return Item("public URL", True, f"{url} is not HTTPS: most dialers refuse plain http", note=True)
    return Item("public URL", True, url)


async def check_crm_and_clock(config: Config, now: float | None = None) -> list[Item]:
    from connector.secrets import get_secret
    from connector.sync.worker import TOKEN_USER, check_crm

    settings = config.ghl
    if not settings.configured:
        return [Item("CRM", True, "GoHighLevel is not configured: calls are stored but not synced", note=True,
                     fix="set [crm.ghl] location_id and the token (callsync secret set crm:ghl)")]
    # The clock is compared with the Date header of the CRM's own answer to the location request.
    dates: list[str] = []

    async def on_request_end(_session: Any, _ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.headers.get("Date"):
            dates.append(params.response.headers["Date"])

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        result = await check_crm(settings, get_secret(TOKEN_USER), http)
    items = [Item("CRM", bool(result["ok"]), result["verdict"],
                  fix="" if result["ok"] else "see the verdict; then run `callsync check-crm` again")]
    date = dates[-1] if dates else None
    if not date:
        items.append(Item("clock", True, "not checked: no answer from the CRM to compare with", note=True))
        return items
    skew = (now if now is not None else time.time()) - parsedate_to_datetime(date).timestamp()
    if abs(skew) > MAX_SKEW_SECONDS:
        items.append(Item("clock", False, f"this machine's clock is {abs(skew):.0f} s {'ahead' if skew > 0 else 'behind'}",
                          fix="turn on automatic time (NTP): signed webhooks older than 5 minutes are refused"))
    else:
        items.append(Item("clock", True, f"within {abs(skew):.0f} s of the CRM's clock"))
    return items


async def diagnose(config: Config) -> list[Item]:
    items = [check_keyring(), *check_secrets(config), *check_data_dir(config), check_store(config)]
    items += await check_ports(config)
    items.append(check_public_url(config))
    items += await check_crm_and_clock(config)
    return items


def run(config: Config, *, as_json: bool = False) -> int:
    items = asyncio.run(diagnose(config))
    failed = [item for item in items if not item.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "config": str(config.config_path),
                          "checks": [asdict(item) for item in items]}, indent=2))
    else:
        print(f"config: {config.config_path}" + ("" if config.config_path.exists() else " (no such file: defaults)"))
        for item in items:
            for line in item.lines():
                print(line)
        print(f"doctor: {len(items) - len(failed)} of {len(items)} checks passed"
              + (f"; {len(failed)} to fix" if failed else ""))
    return 0 if not failed else 1


