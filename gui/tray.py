"""Tray icon: colour follows health; notifications when syncing fails or the token is rejected."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from connector.facade import Snapshot
from gui.widgets import health_icon


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


class Tray(QObject):
    open_requested = Signal()
    quit_requested = Signal()
    autostart_toggled = Signal(bool)
    about_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(health_icon("info"), parent)
        self.icon.setToolTip("callsync — starting")
        self.menu = QMenu()
        self.status = QAction("Starting…", self.menu)
        self.status.setEnabled(False)
        self.open = QAction("Open callsync", self.menu)
        self.autostart = QAction("Start on login", self.menu)
        self.autostart.setCheckable(True)
        self.about = QAction("About callsync", self.menu)
        self.quit = QAction("Quit callsync", self.menu)
        for action in (self.status, None, self.open, self.autostart, self.about, None, self.quit):
            self.menu.addAction(action) if action else self.menu.addSeparator()
        self.icon.setContextMenu(self.menu)
        self.open.triggered.connect(self.open_requested)
        self.quit.triggered.connect(self.quit_requested)
        self.about.triggered.connect(self.about_requested)
        self.autostart.toggled.connect(self.autostart_toggled)
        self.icon.activated.connect(self._activated)
        self.level = "info"
        self.verdict = ""
        self.dead: int | None = None  # baseline set by the first snapshot
        self.notifications: list[tuple[str, str]] = []  # what was shown, newest last

    def show(self) -> None:
        self.icon.show()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_requested.emit()

    def set_health(self, snap: Snapshot) -> None:
        level, verdict = snap.level, snap.verdict
        dead = int(snap.metrics.get("dead") or 0)
        if level != self.level:
            self.icon.setIcon(health_icon(level))
        self.icon.setToolTip(f"callsync — {verdict}")
        self.status.setText(verdict)
        crm = snap.metrics.get("crm") or {}
        if crm.get("auth_error") and "Token rejected" not in self.verdict:
            self.notify("GoHighLevel rejected the token", "Nothing is written to the CRM until you save a new "
                        "token in callsync (CRM tab).", QSystemTrayIcon.MessageIcon.Critical)
        elif self.dead is not None and dead > self.dead:
            self.notify("Calls could not be synced", f"{dead - (self.dead or 0)} more call(s) failed permanently — "
                        "open callsync → Dead letters to replay them.", QSystemTrayIcon.MessageIcon.Warning)
        elif level == "error" and self.level != "error":
            self.notify("callsync needs attention", verdict, QSystemTrayIcon.MessageIcon.Warning)
        self.level, self.verdict, self.dead = level, verdict, dead

    def show_alerts(self, alerts: list[dict]) -> None:
        """New automation alerts as a desktop notification (one for a burst)."""
        if not alerts:
            return
        if len(alerts) == 1:
            self.notify("callsync alert", alerts[0]["message"], QSystemTrayIcon.MessageIcon.Warning)
            return
        self.notify(f"callsync: {len(alerts)} alerts", "\n".join(a["message"] for a in alerts[:3])
                    + ("\n…" if len(alerts) > 3 else "") + "\nOpen callsync → Automations.",
                    QSystemTrayIcon.MessageIcon.Warning)

    def notify(self, title: str, text: str, icon: QSystemTrayIcon.MessageIcon) -> None:
        self.notifications.append((title, text))
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, text, icon, 10_000)
