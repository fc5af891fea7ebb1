"""First run (empty data dir) and a machine without a usable OS keyring."""

from __future__ import annotations

import tomllib

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt

from connector import secrets
from connector.config import SourceConfig
from connector.facade import SecretStoreUnavailable
from tests.conftest import SECRET
from tests.gui.conftest import until

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


async def test_first_run_setup_saves_source_token_and_location(qtbot, start_service, open_window, ghl,
                                                               memory_keyring):
    service = await start_service(crm=False, token=None, extra={"crm": {"ghl": {"base_url": ghl.base_url}}})
    window = open_window(service)
    assert window.stack.currentWidget() is window.setup
    setup = window.setup
    assert setup.source_name.text() == "dialer"
    qtbot.keyClicks(setup.secret, SECRET)
    qtbot.keyClicks(setup.location, ghl.location_id)
    qtbot.keyClicks(setup.token, ghl.token)
    qtbot.mouseClick(setup.finish, LEFT)

    assert window.stack.currentIndex() == 0 and window.tabs.currentWidget() is window.dashboard
    assert memory_keyring.values[("callsync", "source:dialer")] == SECRET
    assert memory_keyring.values[("callsync", "crm:ghl")] == ghl.token
    data = tomllib.loads(service.config.config_path.read_text())
    assert data["sources"]["dialer"]["kind"] == "hmac"
    assert data["crm"]["ghl"]["location_id"] == ghl.location_id
    assert service.config.sources["dialer"].kind == "hmac" and service.worker.settings.configured
    await until(lambda: window.dashboard.health.text.text() == "All synced", what="all synced")
    assert [window.sources.list.item(i).text() for i in range(window.sources.list.count())] == ["dialer"]


async def test_first_run_can_be_skipped(qtbot, start_service, open_window):
    service = await start_service(crm=False, token=None)
    before = service.config.config_path.read_text()
    window = open_window(service)
    assert window.stack.currentWidget() is window.setup
    qtbot.mouseClick(window.setup.skip, LEFT)
    assert window.stack.currentIndex() == 0
    assert service.config.config_path.read_text() == before


async def test_configured_data_dir_skips_setup(start_service, open_window):
    service = await start_service(sources={"dialer": {"kind": "hmac"}})
    window = open_window(service)
    assert window.stack.currentIndex() == 0


async def test_no_keyring_shows_banner_and_disables_secret_fields(qtbot, start_service, open_window):
    service = await start_service(crm=False, token=None)
    keyring.set_keyring(fail.Keyring())
    secrets.invalidate_cache()
    window = open_window(service)

    banner = window.keyring_banner
    assert banner.isVisible()
    assert "No usable OS keyring" in banner.text.text()
    assert "CALLSYNC_SECRET_<SOURCE>" in banner.text.text() and "CALLSYNC_GHL_TOKEN" in banner.text.text()
    for field in (window.setup.secret, window.setup.token, window.sources.secret, window.crm.token):
        assert not field.isEnabled()
    assert not window.crm.save_token.isEnabled()
    assert "CALLSYNC_GHL_TOKEN" in window.crm.token.placeholderText()

    # The first-run screen still works: the source is saved, its secret goes to the environment.
    qtbot.mouseClick(window.setup.finish, LEFT)
    assert "dialer" in service.config.sources
    window.select_tab("sources")
    assert "CALLSYNC_SECRET_DIALER" in window.sources.secret_state.text()

    # Never a silent plaintext fallback: asking to store a secret is refused with the alternative.
    with pytest.raises(SecretStoreUnavailable, match="CALLSYNC_SECRET_OTHER"):
        window.facade.save_source(SourceConfig("other"), "plain-secret-value")
    assert "other" not in service.config.sources
    files = [p for p in service.config.data_dir.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert all("plain-secret-value" not in p.read_text(errors="ignore") for p in files)


async def test_keyring_present_hides_banner(start_service, open_window):
    service = await start_service(sources={"dialer": {"kind": "hmac"}})
    window = open_window(service)
    assert not window.keyring_banner.isVisible()
    assert window.sources.secret.isEnabled() and window.crm.token.isEnabled()
