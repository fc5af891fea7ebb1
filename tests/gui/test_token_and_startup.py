"""A rejected CRM token leads to a page that says so and how to replace it (keyring or environment);
without a keyring no hint asks to type into a disabled field and the banner lists which variables are
set; start-up errors are one line and a dialog, exit status 2, never a traceback."""

from __future__ import annotations

import asyncio
import socket

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox

from connector import secrets
from connector.startup import DataDirLock
from gui.main import run_app
from tests.conftest import make_config
from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER, completed_call, send

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
BAD_TOKEN = "pit-00000000-0000-0000-0000-000000000000"
ASKS_TO_TYPE = ("paste", "type a new", "enter one")


def visible_hints(window) -> list[str]:
    return [label.text() for label in window.findChildren(QLabel) if label.isVisibleTo(window) and label.text()]


async def test_rejected_token_with_a_keyring_says_paste_a_new_one(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER, token=BAD_TOKEN)
    window = open_window(service)
    await send(service, completed_call("+12025550201"))
    banner = window.dashboard.health
    await until(lambda: banner.text.text() == "Token rejected — open CRM settings", what="token verdict")
    qtbot.mouseClick(banner.button, LEFT)
    crm = window.crm
    assert window.tabs.currentWidget() is crm
    assert crm.token_banner.isVisible() and crm.token_banner.level == "error"
    text = crm.token_banner.text.text()
    assert text.startswith("GoHighLevel rejected the token (HTTP 401). Nothing is written to the CRM")
    assert "Paste a new one below and click “Save token”." in text and crm.token.isEnabled()

    qtbot.keyClicks(crm.token, ghl.token)
    qtbot.mouseClick(crm.save_token, LEFT)
    await until(lambda: not crm.token_banner.isVisible(), what="banner gone with the new token")


async def test_rejected_token_without_a_keyring_names_the_variable_and_asks_nothing_of_disabled_fields(
        qtbot, start_service, open_window, monkeypatch):
    service = await start_service(sources={**DIALER, "backup": {"kind": "hmac"}}, token=None)
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("CALLSYNC_GHL_TOKEN", BAD_TOKEN)
    monkeypatch.setenv("CALLSYNC_SECRET_DIALER", "s3cr3t-dialer")
    secrets.invalidate_cache()
    window = open_window(service)

    # The banner says which of the variables this configuration needs are set, and which are missing.
    keyring_banner = window.keyring_banner.text.text()
    assert "Set: CALLSYNC_SECRET_DIALER, CALLSYNC_GHL_TOKEN." in keyring_banner
    assert "Missing: CALLSYNC_SECRET_BACKUP (secret of source backup)" in keyring_banner
    assert window.keyring_banner.isVisible()

    await send(service, completed_call("+12025550202"))
    health = window.dashboard.health
    await until(lambda: health.text.text() == "Token rejected — open CRM settings", what="token verdict")
    qtbot.mouseClick(health.button, LEFT)
    crm = window.crm
    assert window.tabs.currentWidget() is crm
    text = crm.token_banner.text.text()
    assert crm.token_banner.isVisible() and "GoHighLevel rejected the token (HTTP 401)" in text
    assert ("To replace it, set CALLSYNC_GHL_TOKEN in the environment callsync starts with, then restart callsync"
            in text)
    assert not crm.token.isEnabled() and not crm.save_token.isEnabled()

    # No hint anywhere asks to type into a field that is disabled.
    for tab in ("crm", "sources"):
        window.select_tab(tab)
        for name in ("dialer", "backup"):
            if tab == "sources":
                window.sources.reload(select=name)
            disabled = [f for f in window.findChildren(QLineEdit) if f.isVisibleTo(window) and not f.isEnabled()]
            assert disabled  # the secret and token fields
            for hint in visible_hints(window):
                assert not any(words in hint.lower() for words in ASKS_TO_TYPE), hint
    window.sources.reload(select="dialer")
    assert "comes from CALLSYNC_SECRET_DIALER" in window.sources.secret_state.text()
    window.sources.reload(select="backup")
    assert "until you set CALLSYNC_SECRET_BACKUP" in window.sources.secret_state.text()


def busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("fault", ["port in use", "data dir in use"])
async def test_start_up_errors_are_one_line_and_a_dialog(qapp, tmp_path, capfd, fault):
    held: list = []
    server: dict = {}
    if fault == "port in use":
        sock = busy_port()
        held.append(sock)
        server = {"port": sock.getsockname()[1]}
    else:
        lock = DataDirLock(tmp_path)
        lock.acquire()  # another callsync serves this data dir
        held.append(lock)
    config = make_config(tmp_path, sources=DIALER, server=server)
    try:
        task = asyncio.ensure_future(run_app(qapp, config, dialogs=True))
        await until(lambda: any(isinstance(w, QMessageBox) and w.isVisible() for w in QApplication.topLevelWidgets())
                    or task.done(), what="the error dialog")
        assert not task.done(), task.exception() if task.done() else None
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        assert box.windowTitle() == "callsync cannot start"
        text = box.text()
        assert "\n" not in text and "Traceback" not in text
        assert ("is in use — is callsync already running?" in text if fault == "port in use"
                else "is in use by another callsync" in text)
        box.button(QMessageBox.StandardButton.Ok).click()
        assert await asyncio.wait_for(task, 10) == 2
    finally:
        for thing in held:
            thing.close() if isinstance(thing, socket.socket) else thing.release()
    err = capfd.readouterr().err
    assert err.count("callsync: cannot start: ") == 1 and "Traceback" not in err
    assert err.strip() == f"callsync: cannot start: {text[:1].lower()}{text[1:]}"
