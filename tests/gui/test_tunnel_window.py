"""The window's public URL: the switch (remembered in config.toml), the state on the dashboard and in
Sources, each source's full public URL with a copy button, "Test from outside", the authtoken and the
one-sentence errors - against the local stand-in provider (real HTTP through a loopback proxy)."""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from connector import secrets
from tests.fakes.tunnel_standin import StandIn
from tests.gui.conftest import until

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


async def window_with_standin(start_service, open_window, standin: StandIn):
    service = await start_service(sources={"dialer": {"kind": "hmac"}}, crm=False, token=None)
    service.tunnel.providers = {"ngrok": standin.factory, "cloudflared": standin.factory}
    service.tunnel.retry_schedule = (0.05,)
    window = open_window(service)
    window.select_tab("sources")
    return service, window


async def test_switch_on_gives_each_source_its_public_url_and_test_from_outside_passes(
        qtbot, start_service, open_window):
    standin = StandIn()
    service, window = await window_with_standin(start_service, open_window, standin)
    box = window.sources.tunnel
    assert not box.switch.isChecked()
    assert box.state.text().startswith("Public URL: off")
    assert not box.test.isEnabled()

    qtbot.mouseClick(box.switch, LEFT)
    await until(lambda: service.tunnel.state == "up", what="tunnel up")
    public = service.tunnel.public_url
    saved = tomllib.loads(service.config.config_path.read_text())
    assert saved["tunnel"] == {"provider": "ngrok", "enabled": True}
    await until(lambda: box.state.text() == f"Public URL (ngrok): {public}", what="state shown")
    sources = window.sources
    await until(lambda: sources.public_url.edit.text() == f"{public}/hooks/dialer", what="source URL")
    assert sources.public_url.button.isEnabled()
    qtbot.mouseClick(sources.public_url.button, LEFT)
    assert QGuiApplication.clipboard().text() == f"{public}/hooks/dialer"
    await until(lambda: window.dashboard.tunnel.text() == f"Public URL (ngrok): {public}", what="dashboard line")

    qtbot.mouseClick(box.test, LEFT)
    await until(lambda: "came back in through the tunnel" in box.test_result.text(), what="test from outside")
    assert f"({public}/hooks/dialer)" in box.test_result.text() and "round trip" in box.test_result.text()
    assert standin.forwarded == ["/hooks/dialer"]

    qtbot.mouseClick(box.switch, LEFT)
    await until(lambda: service.tunnel.state == "off")
    assert tomllib.loads(service.config.config_path.read_text())["tunnel"]["enabled"] is False
    await until(lambda: box.state.text().startswith("Public URL: off"))


async def test_errors_are_one_sentence_in_sources_and_on_the_dashboard_and_a_saved_token_retries(
        qtbot, start_service, open_window, memory_keyring):
    standin = StandIn(sdk_error_args=("failed to connect session", "authentication failed: Usage of ngrok requires "
                                      "a verified account and authtoken.", "ERR_NGROK_4018"))
    service, window = await window_with_standin(start_service, open_window, standin)
    box = window.sources.tunnel
    assert "No authtoken yet" in box.token_state.text()
    qtbot.mouseClick(box.switch, LEFT)
    await until(lambda: service.tunnel.state == "error")
    expected = f"Public URL (ngrok) not connected: {service.tunnel.error} The local receiver keeps running."
    assert service.tunnel.error.startswith("ngrok needs a free account")
    await until(lambda: box.state.text() == expected, what="error in Sources")
    await until(lambda: window.dashboard.tunnel.text() == expected, what="error on the dashboard")

    standin.sdk_error_args = None
    qtbot.keyClicks(box.token, "2abc_the-authtoken")
    qtbot.mouseClick(box.save_token, LEFT)
    assert secrets.get_secret("tunnel:ngrok") == "2abc_the-authtoken"
    assert box.token.text() == "" and "An authtoken is saved" in box.token_state.text()
    await until(lambda: service.tunnel.state == "up", what="retried with the new token")


async def test_a_changed_url_is_announced_on_the_dashboard(qtbot, start_service, open_window):
    standin = StandIn(new_address_on_reopen=True)
    service, window = await window_with_standin(start_service, open_window, standin)
    qtbot.mouseClick(window.sources.tunnel.switch, LEFT)
    await until(lambda: service.tunnel.state == "up")
    await standin.drop()
    await until(lambda: service.tunnel.notice is not None and service.tunnel.state == "up")
    banner = window.dashboard.tunnel_notice
    await until(lambda: banner.isVisibleTo(window.dashboard) and "update the webhook URL in your dialer to "
                f"{service.tunnel.public_url}/hooks/dialer" in banner.text.text(), what="notice banner")
    await until(lambda: window.sources.public_url.edit.text() == f"{service.tunnel.public_url}/hooks/dialer")
