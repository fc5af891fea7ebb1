"""Start-up failures reach the caller as StartupError (one sentence), and leave nothing held."""

from __future__ import annotations

import os
import socket

import pytest

from connector.app import Service, StartupError
from connector.config import ConfigError, load_config
from connector.startup import DataDirLock
from tests.conftest import make_config


def test_the_data_dir_lock_names_its_holder_and_is_released(tmp_path):
    first = DataDirLock(tmp_path)
    first.acquire()
    assert (tmp_path / "callsync.lock").read_text().startswith(f"pid {os.getpid()}: ")
    second = DataDirLock(tmp_path)
    with pytest.raises(StartupError, match=rf"is in use by another callsync \(pid {os.getpid()}: .*\)"):
        second.acquire()
    first.release()
    second.acquire()  # free again
    second.release()
    assert (tmp_path / "callsync.lock").read_text() == ""  # no stale pid left behind


async def test_a_second_service_on_the_same_data_dir_is_refused(tmp_path):
    first = Service(make_config(tmp_path))
    await first.start()
    try:
        second = Service(make_config(tmp_path))
        with pytest.raises(StartupError, match="in use by another callsync"):
            await second.start()
        assert first.writer._thread.is_alive()
    finally:
        await first.stop()
    third = Service(make_config(tmp_path))
    await third.start()
    await third.stop()


async def test_a_busy_port_is_a_startup_error_and_frees_the_data_dir(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service(make_config(tmp_path, server={"port": port}))
        with pytest.raises(StartupError, match=rf"hooks port {port} is in use — is callsync already running\?"):
            await service.start()
    assert not service.lock.held and not service.writer._thread.is_alive()
    await service.stop()  # the window calls stop() after a failed start: must be harmless


@pytest.mark.parametrize("store", ["garbage", "directory"])
async def test_a_store_that_cannot_be_opened_is_a_startup_error(tmp_path, store):
    db = tmp_path / "callsync.db"
    if store == "garbage":
        db.write_bytes(b"\x00garbage" * 1000)
    else:
        db.mkdir()
    service = Service(make_config(tmp_path))
    with pytest.raises(StartupError, match=f"cannot open the store {db}"):
        await service.start()
    assert not service.lock.held


def test_a_data_dir_that_cannot_be_created_is_a_startup_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StartupError, match="is not writable"):
        load_config(tmp_path / "file" / "data")


def test_bad_crm_settings_fail_when_the_config_is_loaded(tmp_path):
    """Validated once, at load: `serve` and the window fail before anything starts."""
    (tmp_path / "config.toml").write_text('[crm.ghl]\nlocation_id = "x"\nrate_limt = "10/1s"\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[crm.ghl\]: unknown key 'rate_limt' "
                                          r"\(did you mean 'rate_limit'\?\)"):
        load_config(tmp_path)
