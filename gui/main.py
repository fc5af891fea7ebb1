"""``callsync`` / ``callsync gui``: the window, the receiver and the sync worker on one qasync loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

import qasync  # after PySide6: qasync binds to the Qt already imported

from connector.app import Service
from connector.config import Config
from connector.facade import Facade
from gui.tray import Tray, tray_available
from gui.window import MainWindow

log = logging.getLogger(__name__)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))


async def run_app(app: QApplication, config: Config) -> int:
    """Start the service, show the window, wait for a quit request, stop everything cleanly."""
    stop = asyncio.Event()
    app.aboutToQuit.connect(stop.set)
    _install_signal_handlers(stop)
    service = Service(config)
    try:
        await service.start()
    except OSError as exc:
        await service.stop()
        message = (f"{exc}\n\nIs callsync already running? Another program may use port "
                   f"{config.server.port}; change [server] port in {config.config_path}.")
        print(f"callsync: cannot start: {message}", file=sys.stderr, flush=True)
        if QGuiApplication.platformName() != "offscreen":
            await qasync.asyncWrap(lambda: QMessageBox.critical(None, "callsync cannot start", message))
        return 1
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


def run_gui(config: Config) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("callsync")
    app.setApplicationDisplayName("callsync")
    app.setQuitOnLastWindowClosed(False)  # closing the window keeps callsync running in the tray
    try:
        return qasync.run(run_app(app, config))
    except RuntimeError as exc:  # Qt quit on its own (e.g. session end) before the loop finished
        log.warning("event loop ended early: %s", exc)
        return 0
