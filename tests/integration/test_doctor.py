"""`callsync doctor`: each check against the real thing (store file, sockets, running service, fake CRM)."""

from __future__ import annotations

import socket
import time

from connector import doctor, secrets
from tests.conftest import make_config


def by_name(items: list[doctor.Item]) -> dict[str, doctor.Item]:
    return {item.name: item for item in items}


def crm(ghl) -> dict:
    return {"crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url}}}


async def test_a_healthy_running_setup_passes_every_check(service, ghl):
    config = service.config
    config.ghl = make_config(config.data_dir, extra=crm(ghl)).ghl
    config.server.admin_port, config.server.port = service.admin_port, service.hooks_port
    secrets.set_secret("crm:ghl", ghl.token)
    secrets.set_secret("admin:token", "t0k3n")
    items = by_name(await doctor.diagnose(config))
    failed = [item for item in items.values() if not item.ok]
    assert failed == []
    assert "running" in items["ports"].detail and "healthy" in items["ports"].detail
    assert "quick_check" in items["store"].detail
    assert items["CRM"].detail.startswith("Connected to location")
    assert items["clock"].ok and not items["clock"].note


async def test_each_failure_names_its_fix(tmp_path, ghl, source_secrets):
    config = make_config(tmp_path, extra=crm(ghl))
    # The CRM token is missing, the store is not a database, and the hooks port is taken.
    (tmp_path / "callsync.db").write_bytes(b"this is not a database" * 100)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        config.server.port = other.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            config.server.admin_port = free.getsockname()[1]
        items = by_name(await doctor.diagnose(config))
    assert not items["secret crm:ghl"].ok and "callsync secret set crm:ghl" in items["secret crm:ghl"].fix
    assert "CALLSYNC_GHL_TOKEN" in items["secret crm:ghl"].fix
    assert items["secret source:dialer"].ok
    assert not items["store"].ok and items["store"].fix
    assert not items["hooks port"].ok and "in use" in items["hooks port"].detail
    assert items["admin port"].ok
    assert not items["CRM"].ok and "No token" in items["CRM"].detail


async def test_clock_skew_against_the_crm_date_header(tmp_path, ghl):
    config = make_config(tmp_path, extra=crm(ghl))
    secrets.set_secret("crm:ghl", ghl.token)
    on_time = by_name(await doctor.check_crm_and_clock(config, now=time.time()))
    assert on_time["clock"].ok and not on_time["clock"].note
    late = by_name(await doctor.check_crm_and_clock(config, now=time.time() - 600))
    assert not late["clock"].ok and "behind" in late["clock"].detail and "NTP" in late["clock"].fix


async def test_an_unreachable_crm_is_a_failure_and_the_clock_a_note(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = make_config(tmp_path, extra={"crm": {"ghl": {"location_id": "loc", "base_url": f"http://127.0.0.1:{port}"}}})
    secrets.set_secret("crm:ghl", "pit-token")
    items = by_name(await doctor.check_crm_and_clock(config))
    assert not items["CRM"].ok and "Could not connect" in items["CRM"].detail
    assert items["clock"].ok and items["clock"].note


def test_public_url_wording():
    cases = {
        "": (True, True, "only this machine"),
        "http://127.0.0.1:8787": (True, True, "only reachable from this machine"),
        "http://hooks.example.com": (True, True, "not HTTPS"),
        "https://team.ngrok-free.app": (True, False, "https://team.ngrok-free.app"),
    }
    for url, (ok, note, words) in cases.items():
        config = make_config("/tmp", server={"public_url": url})
        item = doctor.check_public_url(config)
        assert (item.ok, item.note) == (ok, note) and words in item.detail, url


def test_data_dir_not_writable(tmp_path):
    config = make_config(tmp_path / "missing")
    (item,) = doctor.check_data_dir(config)
    assert not item.ok and "does not exist" in item.detail


async def test_the_postgres_store_is_checked_where_it_lives(tmp_path, pg_url):
    config = make_config(tmp_path, extra={"store": {"url": pg_url}})
    assert "empty" in doctor.check_store(config).detail  # nothing created yet: a note, not a failure
    from connector.store import pg_schema
    from connector.store.postgres import open_postgres

    db = open_postgres(pg_url)
    pg_schema.migrate(db)
    db.close()
    item = doctor.check_store(config)
    assert item.ok and "takes writes" in item.detail and f"schema version {len(pg_schema.MIGRATIONS)}" in item.detail
    assert not (tmp_path / "callsync.db").exists()
    gone = make_config(tmp_path, extra={"store": {"url": f"postgresql://callsync@/none?host={tmp_path}&port=5999"}})
    item = doctor.check_store(gone)
    assert not item.ok and "cannot be reached" in item.detail and "secret set store" in item.fix
