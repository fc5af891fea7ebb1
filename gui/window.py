"""The main window: banners, tabs, the live refresh timer.  Closing it keeps callsync running in the
tray; without a system tray, closing asks whether to keep running minimised or to quit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade, Snapshot
from gui.about import AboutDialog, ChecksDialog, open_checks
from gui.automations import AutomationsView
from gui.calls import CallsView
from gui.crm import CrmView
from gui.dashboard import Dashboard
from gui.dead_letters import DeadLettersView
from gui.events import EventsView
from gui.setup import SetupPage
from gui.sources import SourcesView
from gui.tray import Tray
from gui.widgets import Banner, fmt_bytes, health_icon

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


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MainWindow(QMainWindow):
    quit_requested = Signal()

    def __init__(self, facade: Facade, tray: Tray | None = None, *, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__()
        self.facade = facade
        self.tray = tray
        self.refresh_ms = refresh_ms
        self.setWindowTitle("callsync")
        self.setWindowIcon(health_icon("info"))
        self.resize(1200, 780)

        self.keyring_banner = Banner()
        self.show_keyring_state()

        self.dashboard = Dashboard()
        self.events = EventsView(facade)
        self.calls = CallsView(facade)
        self.dead_letters = DeadLettersView(facade)
        self.automations = AutomationsView(facade)
        self.sources = SourcesView(facade)
        self.crm = CrmView(facade)
        self.tabs = QTabWidget()
        self.pages = {
            "dashboard": (self.dashboard, "Dashboard"),
            "events": (self.events, "Events"),
            "calls": (self.calls, "Calls"),
            "dead_letters": (self.dead_letters, "Dead letters"),
            "automations": (self.automations, "Automations"),
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
        self.close_box: QMessageBox | None = None
        self.about_dialog: AboutDialog | None = None
        self.checks_dialog: ChecksDialog | None = None

        self.dashboard.open_tab.connect(self.select_tab)
        self.sources.show_event.connect(self.show_event)
        self.sources.changed.connect(self.refresh_now)
        self.sources.changed.connect(self.show_keyring_state)
        self.crm.changed.connect(self.refresh_now)
        self.crm.changed.connect(self.show_keyring_state)
        self.setup.done.connect(self.finish_setup)
        self.tabs.currentChanged.connect(self._tab_changed)
        if tray is not None:
            tray.open_requested.connect(self.show_window)
            tray.quit_requested.connect(self.quit_requested)
            tray.autostart_toggled.connect(self.set_autostart)
            tray.about_requested.connect(self.show_about)
            facade.automations.on_alert(tray.show_alerts)  # desktop notifications ([alerts] desktop)

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&callsync")
        self.autostart_action = QAction("Start on login", self)
        self.autostart_action.setCheckable(True)
        supported, message = self.facade.autostart_supported()
        self.autostart_action.setEnabled(supported)
        self.autostart_action.setStatusTip(message)
        self.autostart_action.setChecked(self.facade.autostart_enabled())
        self.autostart_action.toggled.connect(self.set_autostart)
        if self.tray is not None:
            close = QAction("Close window (keeps running in the tray)", self)
            close.triggered.connect(self.close)
        else:  # no tray to keep running in: the window stays, minimised
            close = QAction("Minimise window (keeps running)", self)
            close.triggered.connect(self.showMinimized)
        close.setShortcut(QKeySequence.StandardKey.Close)
        self.close_action = close
        quit_action = QAction("Quit callsync", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested)
        self.checks_action = QAction("Run checks…", self)
        self.checks_action.setStatusTip("What `callsync doctor` checks, with a fix for each failure")
        self.checks_action.triggered.connect(self.run_checks)
        self.about_action = QAction("About callsync", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        menu.addAction(self.autostart_action)
        menu.addAction(self.checks_action)
        menu.addSeparator()
        menu.addAction(close)
        menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.about_action)
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
            self.ask_close()
            return
        self.hide()
        self.timer.setInterval(HIDDEN_REFRESH_MS)
        if not self._told_about_tray and self.tray is not None:
            self._told_about_tray = True
            self.tray.notify("callsync keeps running", "Webhooks are still received and synced. Open the window "
                             "or quit from the tray icon.", self.tray.icon.MessageIcon.Information)

    def ask_close(self) -> None:
        """No system tray: closing the window would leave nothing to reopen it from, so ask."""
        if self.close_box is not None:
            self.close_box.raise_()
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Keep callsync running?",
                          "This desktop has no system tray, so callsync cannot keep running without its window.",
                          QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Minimise the window to keep receiving webhooks and syncing calls, or quit "
                               "callsync: webhooks sent while it is stopped are refused until it runs again.")
        self.keep_button: QPushButton = box.addButton("Keep running (minimise)", QMessageBox.ButtonRole.AcceptRole)
        self.quit_button: QPushButton = box.addButton("Quit callsync", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(self.keep_button)
        box.buttonClicked.connect(self._close_answered)
        box.finished.connect(lambda _result: setattr(self, "close_box", None))
        self.close_box = box
        box.open()

    def _close_answered(self, button: QPushButton) -> None:
        if button is self.quit_button:
            self.quit_requested.emit()
        elif button is self.keep_button:
            self.showMinimized()
            self.statusBar().showMessage("callsync keeps running minimised; quit it from the callsync menu.", 15_000)

    def show_keyring_state(self) -> None:
        """Without an OS keyring, the banner lists the variables this configuration needs and which are set."""
        status = self.facade.keyring_status()
        self.keyring_banner.setVisible(not status.usable)
        if status.usable:
            return
        variables = self.facade.secret_variables()
        missing = [v for v in variables if not v.is_set]
        lines = [status.message]
        if variables:
            lines.append("Set: " + (", ".join(v.name for v in variables if v.is_set) or "none") + ".")
        if missing:
            lines.append("Missing: " + ", ".join(f"{v.name} ({v.what})" for v in missing)
                         + " — set them in the environment callsync starts with, then restart callsync.")
        self.keyring_banner.set_message("warn" if missing else "info", "\n".join(lines))

    def show_about(self) -> AboutDialog:
        if self.about_dialog is not None and self.about_dialog.isVisible():
            self.about_dialog.raise_()
            return self.about_dialog
        size = (self.last_snapshot.metrics.get("store_bytes") if self.last_snapshot else None) or None
        self.about_dialog = AboutDialog(self.facade, fmt_bytes(size) if size else "", self)
        self.about_dialog.open()
        return self.about_dialog

    def run_checks(self) -> ChecksDialog:
        self.checks_dialog = open_checks(self.facade, self)
        return self.checks_dialog

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
        if page in (self.events, self.calls, self.dead_letters, self.automations):
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
        if self._busy or self._closed or not _loop_running():
            return  # a tick Qt delivers while the event loop is already shutting down: nothing to show
        self._busy = True
        try:
            snap = await self.facade.snapshot()
            self.last_snapshot = snap
            if self.tray is not None:
                self.tray.set_health(snap)
            self.setWindowIcon(health_icon(snap.level))
            if not self.isVisible():
                return
            self.dashboard.show_snapshot(snap)
            self.sources.show_rejections(snap.rejections)
            self.sources.tunnel.refresh()
            if (snap.metrics.get("crm") or {}).get("auth_error") != self.crm.shown_auth_error:
                self.crm.show_token_state()  # the token was rejected, or a new one accepted
            version = self.facade.data_version()
            if version != self._version:
                self._version = version
                page = self.tabs.currentWidget()
                if page in (self.events, self.calls, self.dead_letters) and self.stack.currentIndex() == 0:
                    await page.refresh_new()
            if self.tabs.currentWidget() is self.automations and self.stack.currentIndex() == 0:
                await self.automations.refresh_new()  # live figures move with the clock too (pauses)
        finally:
            self._busy = False
