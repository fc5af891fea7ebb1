"""Closing the window keeps callsync running in the tray; without a tray it asks (keep running
minimised, or quit) and never quits silently; quitting goes through the quit signal."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from gui.main import make_app
from tests.gui.conftest import until
from tests.gui.test_dead_letters import DIALER, completed_call, send

pytestmark = pytest.mark.gui


async def test_close_hides_to_tray_and_keeps_receiving(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    window = open_window(service, tray=True)
    quits = []
    window.quit_requested.connect(lambda: quits.append(True))

    window.close()
    assert not window.isVisible()
    assert quits == []
    assert window.tray.icon.isVisible()
    assert window.tray.notifications[-1][0] == "callsync keeps running"
    assert window.timer.interval() == 10_000  # only the tray watches now

    await send(service, completed_call("+12025550161"))  # still receiving and syncing
    await until(lambda: ghl.contact_by_phone("+12025550161") is not None, what="synced while hidden")

    window.tray.open.trigger()
    assert window.isVisible()
    assert window.timer.interval() == 100
    await until(lambda: window.dashboard.tiles["processed"].value.text() == "1", what="dashboard caught up")

    window.tray.quit.trigger()
    assert quits == [True]


def test_the_app_does_not_quit_when_its_window_closes(qapp):
    qapp.setQuitOnLastWindowClosed(True)  # Qt's default
    try:
        assert make_app() is qapp and qapp.quitOnLastWindowClosed() is False  # hidden to the tray is not the end
    finally:
        qapp.setQuitOnLastWindowClosed(False)


async def test_without_a_tray_closing_asks_and_never_quits_silently(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER)
    window = open_window(service, tray=False)
    quits = []
    window.quit_requested.connect(lambda: quits.append(True))
    assert window.close_action.text() == "Minimise window (keeps running)"

    window.close()
    box = window.close_box
    assert box is not None and box.isVisible() and "no system tray" in box.text()
    assert window.isVisible() and quits == []
    qtbot.mouseClick(window.keep_button, Qt.MouseButton.LeftButton)
    assert window.isVisible() and window.isMinimized() and quits == []
    assert window.close_box is None and "keeps running minimised" in window.statusBar().currentMessage()

    window.close_action.trigger()  # the menu's "close" minimises too
    assert window.isMinimized() and window.close_box is None and quits == []

    window.close()
    qtbot.mouseClick(window.quit_button, Qt.MouseButton.LeftButton)  # quitting is an explicit choice
    assert quits == [True]


async def test_start_on_login_menu_writes_the_autostart_entry(start_service, open_window, tmp_path):
    service = await start_service(sources=DIALER)
    window = open_window(service, tray=True)
    entry = tmp_path / "autostart" / "callsync.desktop"
    assert not window.autostart_action.isChecked()
    window.autostart_action.trigger()
    assert entry.exists() and "Exec=callsync gui" in entry.read_text()
    assert window.tray.autostart.isChecked()
    window.tray.autostart.trigger()
    assert not entry.exists() and not window.autostart_action.isChecked()
