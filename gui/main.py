"""``callsync`` / ``callsync gui``: the window, the receiver and the sync worker on one qasync loop.

A start-up error (:class:`~connector.startup.StartupError`, :class:`~connector.config.ConfigError`)
is one line on stderr and a dialog with the same line, never a traceback; the exit status is 2."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

import qasync  # after PySide6: qasync binds to the Qt already imported

from connector.app import Service
from connector.config import Config, ConfigError
from connector.startup import StartupError
from connector.facade import Facade
from gui.tray import Tray, tray_available
from gui.widgets import app_icon
from gui.window import MainWindow

log = logging.getLogger(__name__)
STARTUP_EXIT = 2
ERROR_TITLE = "callsync cannot start"


def one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split())


def startup_message(error: BaseException) -> str:
    """The one line a start-up failure prints on stderr (the dialog shows the same sentence)."""
    kind = "configuration error" if isinstance(error, ConfigError) else "cannot start"
    return f"callsync: {kind}: {one_line(error)}"


def error_box(error: BaseException) -> QMessageBox:
    message = one_line(error)
    title = "callsync: configuration error" if isinstance(error, ConfigError) else ERROR_TITLE
    box = QMessageBox(QMessageBox.Icon.Critical, title, message[:1].upper() + message[1:],
                      QMessageBox.StandardButton.Ok)
    box.setTextInteractionFlags(box.textInteractionFlags() | Qt.TextInteractionFlag.TextSelectableByMouse)
    return box


def show_startup_error(error: BaseException) -> int:
    """For a failure before the event loop runs (e.g. the configuration could not be loaded for the
    window): the line on stderr, a modal dialog when there is a display, exit status 2."""
    print(startup_message(error), file=sys.stderr, flush=True)
    _app = QApplication.instance() or QApplication(sys.argv[:1])  # a dialog needs one
    if QGuiApplication.platformName() != "offscreen":
        error_box(error).exec()
    return STARTUP_EXIT


async def report_startup_error(error: BaseException, *, dialog: bool) -> int:
    """The same from inside the running loop: the dialog does not block the loop; returns on OK."""
    print(startup_message(error), file=sys.stderr, flush=True)
    if dialog:
        box = error_box(error)
        closed = asyncio.get_running_loop().create_future()
        box.finished.connect(lambda _result: closed.done() or closed.set_result(None))
        box.open()
        await closed
    return STARTUP_EXIT


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))


async def run_app(app: QApplication, config: Config, *, dialogs: bool | None = None) -> int:
    """Start the service, show the window, wait for a quit request, stop everything cleanly.

    ``dialogs``: show start-up errors in a dialog (default: unless the platform is offscreen)."""
    if dialogs is None:
        dialogs = QGuiApplication.platformName() != "offscreen"
    stop = asyncio.Event()
    app.aboutToQuit.connect(stop.set)
    _install_signal_handlers(stop)
    try:
        service = Service(config)
        await service.start()  # cleans up what it started before raising
    except (StartupError, ConfigError, OSError) as exc:
        return await report_startup_error(exc, dialog=dialogs)
    facade = Facade(service)
    tray = Tray() if tray_available() else None
    window = MainWindow(facade, tray)
    window.quit_requested.connect(stop.set)
    if tray is not None:
        tray.show()
    window.show()
    window.start()
    print(f"callsync: hooks on {service.hooks_url}/hooks/<source>  admin on {service.admin_url}", flush=True)
    try:
        await stop.wait()
    finally:
        window.hide()
        await window.aclose()
        if tray is not None:
            tray.icon.hide()
        await service.stop()
    return 0


def make_app() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("callsync")
    app.setApplicationDisplayName("callsync")
    app.setDesktopFileName("callsync")  # Wayland and taskbars match the window to callsync.desktop and its icon
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # closing the window keeps callsync running in the tray
    return app


def run_gui(config: Config) -> int:
    app = make_app()
    try:
        return qasync.run(run_app(app, config))
    except RuntimeError as exc:  # Qt quit on its own (e.g. session end) before the loop finished
        log.warning("event loop ended early: %s", exc)
        return 0
