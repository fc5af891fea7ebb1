"""The main window: banners, tabs, the live refresh timer; closing it keeps callsync in the tray."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QTabWidget, QVBoxLayout, QWidget
from qasync import asyncSlot

from connector.facade import Facade, Snapshot
from gui.calls import CallsView
from gui.crm import CrmView
from gui.dashboard import Dashboard
from gui.dead_letters import DeadLettersView
from gui.events import EventsView
from gui.setup import SetupPage
from gui.sources import SourcesView
from gui.tray import Tray
from gui.widgets import LEVEL_COLORS, Banner, dot_icon

REFRESH_MS = 2000
HIDDEN_REFRESH_MS = 10_000  # only the tray is watching
GUI_DIR = str(Path(__file__).parent)


def view_tasks() -> list[asyncio.Task]:
    """Tasks started by the views' async slots (their coroutines live in gui/)."""
    current = asyncio.current_task()
    tasks = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not current and code is not None and code.co_filename.startswith(GUI_DIR):
            tasks.append(task)
    return tasks


class MainWindow(QMainWindow):
    quit_requested = Signal()

    def __init__(self, facade: Facade, tray: Tray | None = None, *, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__()
        self.facade = facade
        self.tray = tray
        self.refresh_ms = refresh_ms
        self.setWindowTitle("callsync")
        self.setWindowIcon(dot_icon(LEVEL_COLORS["info"]))
        self.resize(1200, 780)

        self.keyring_banner = Banner()
        status = facade.keyring_status()
        self.keyring_banner.set_message("warn", f"{status.message}\n{status.hint}")
        self.keyring_banner.setVisible(not status.usable)

        self.dashboard = Dashboard()
        self.events = EventsView(facade)
        self.calls = CallsView(facade)
        self.dead_letters = DeadLettersView(facade)
        self.sources = SourcesView(facade)
        self.crm = CrmView(facade)
        self.tabs = QTabWidget()
        self.pages = {
            "dashboard": (self.dashboard, "Dashboard"),
            "events": (self.events, "Events"),
            "calls": (self.calls, "Calls"),
            "dead_letters": (self.dead_letters, "Dead letters"),
            "sources": (self.sources, "Sources"),
            "crm": (self.crm, "CRM"),
        }
        for widget, title in self.pages.values():
            self.tabs.addTab(widget, title)

        self.setup = SetupPage(facade)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.tabs)
        self.stack.addWidget(self.setup)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addWidget(self.keyring_banner)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.where = QLabel("")
        self.statusBar().addWidget(self.where, 1)
        self._build_menu()

        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)
        self.kick = QTimer(self)  # "refresh as soon as the loop is free", stoppable like the timer
        self.kick.setSingleShot(True)
        self.kick.setInterval(0)
        self.kick.timeout.connect(self.refresh)
        self._closed = False
        self._busy = False
        self._version = -1
        self.last_snapshot: Snapshot | None = None
        self._told_about_tray = False

        self.dashboard.open_tab.connect(self.select_tab)
        self.sources.show_event.connect(self.show_event)
        self.sources.changed.connect(self.refresh_now)
        self.crm.changed.connect(self.refresh_now)
        self.setup.done.connect(self.finish_setup)
        self.tabs.currentChanged.connect(self._tab_changed)
        if tray is not None:
            tray.open_requested.connect(self.show_window)
            tray.quit_requested.connect(self.quit_requested)
            tray.autostart_toggled.connect(self.set_autostart)

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&callsync")
        self.autostart_action = QAction("Start on login", self)
        self.autostart_action.setCheckable(True)
        supported, message = self.facade.autostart_supported()
        self.autostart_action.setEnabled(supported)
        self.autostart_action.setStatusTip(message)
        self.autostart_action.setChecked(self.facade.autostart_enabled())
        self.autostart_action.toggled.connect(self.set_autostart)
        close = QAction("Close window (keeps running)", self)
        close.setShortcut(QKeySequence.StandardKey.Close)
        close.triggered.connect(self.close)
        quit_action = QAction("Quit callsync", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested)
        menu.addAction(self.autostart_action)
        menu.addSeparator()
        menu.addAction(close)
        menu.addAction(quit_action)
        if self.tray is not None:
            self.tray.autostart.setEnabled(supported)
            self.tray.autostart.setChecked(self.facade.autostart_enabled())

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Begin live refresh; show the setup screen on a first run."""
        service = self.facade.service
        self.where.setText(f"Receiving on {service.hooks_url}/hooks/<source> · data in {self.facade.config.data_dir}")
        if self.facade.is_first_run():
            self.stack.setCurrentWidget(self.setup)
        self._closed = False
        self.timer.start()
        self.kick.start()

    def stop(self) -> None:
        self._closed = True
        self.timer.stop()
        self.kick.stop()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop refreshing and let queries already on their way finish (before the service stops)."""
        self.stop()
        tasks = view_tasks()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def finish_setup(self) -> None:
        self.stack.setCurrentIndex(0)
        self.sources.reload()
        self.crm.reload()
        self.refresh_now()

    def show_window(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
        self.timer.setInterval(self.refresh_ms)
        self.refresh_now()

    @property
    def keeps_running_in_tray(self) -> bool:
        return self.tray is not None and self.tray.icon.isVisible()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        event.ignore()
        if not self.keeps_running_in_tray:
            self.quit_requested.emit()
            return
        self.hide()
        self.timer.setInterval(HIDDEN_REFRESH_MS)
        if not self._told_about_tray and self.tray is not None:
            self._told_about_tray = True
            self.tray.notify("callsync keeps running", "Webhooks are still received and synced. Open the window "
                             "or quit from the tray icon.", self.tray.icon.MessageIcon.Information)

    # -- navigation -------------------------------------------------------------------
    def select_tab(self, name: str) -> None:
        self.stack.setCurrentIndex(0)
        self.tabs.setCurrentWidget(self.pages[name][0])

    def show_event(self, event_id: int) -> None:
        self.events.select_event(event_id)
        if self.tabs.currentWidget() is self.events:
            self.events.reload()
        else:
            self.select_tab("events")  # switching tabs reloads it

    def _tab_changed(self, _index: int) -> None:
        page = self.tabs.currentWidget()
        if page in (self.events, self.calls, self.dead_letters):
            page.reload()
        elif page is self.sources:
            self.sources.reload()
        elif page is self.crm:
            self.crm.reload()

    def set_autostart(self, enabled: bool) -> None:
        try:
            self.facade.set_autostart(enabled)
        except (OSError, NotImplementedError) as exc:
            self.statusBar().showMessage(f"Start on login: {exc}", 8000)
        actual = self.facade.autostart_enabled()
        for action in filter(None, (self.autostart_action, self.tray and self.tray.autostart)):
            action.blockSignals(True)
            action.setChecked(actual)
            action.blockSignals(False)

    # -- live refresh ------------------------------------------------------------------
    def refresh_now(self) -> None:
        if not self._closed:
            self.kick.start()

    @asyncSlot()
    async def refresh(self) -> None:
        """One tick: snapshot for the dashboard and tray; new rows for the table on screen."""
        if self._busy or self._closed:
            return
        self._busy = True
        try:
            snap = await self.facade.snapshot()
            self.last_snapshot = snap
            if self.tray is not None:
                self.tray.set_health(snap)
            self.setWindowIcon(dot_icon(LEVEL_COLORS[snap.level]))
            if not self.isVisible():
                return
            self.dashboard.show_snapshot(snap)
            version = self.facade.data_version()
            if version != self._version:
                self._version = version
                page = self.tabs.currentWidget()
                if page in (self.events, self.calls, self.dead_letters) and self.stack.currentIndex() == 0:
                    await page.refresh_new()
        finally:
            self._busy = False
