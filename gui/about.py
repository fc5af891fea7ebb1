"""About callsync (version, where its data lives) and the checks of ``callsync doctor`` in the window."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from connector.version import VERSION
from gui.widgets import LEVEL_COLORS, app_icon, heading, hint

MARKS = {"ok": ("ok", LEVEL_COLORS["ok"]), "note": ("note", LEVEL_COLORS["info"]), "fail": ("FAIL", LEVEL_COLORS["error"])}


def store_location(config: Any) -> str:
    """Where the store is: the SQLite file, or the PostgreSQL URL when ``[store] url`` is set."""
    url = getattr(getattr(config, "store", None), "url", "")
    return f"PostgreSQL {url}" if url else str(config.db_path)


def selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class AboutDialog(QDialog):
    def __init__(self, facade: Facade, store_size: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.setWindowTitle("About callsync")
        self.setWindowIcon(app_icon())
        config = facade.config
        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(96, 96))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.version = heading(f"callsync {VERSION}")
        self.values = {
            "Data folder": selectable(str(config.data_dir)),
            "Store": selectable(store_location(config) + (f" ({store_size})" if store_size else "")),
            "Settings": selectable(str(config.config_path)),
        }
        form = QFormLayout()
        for caption, label in self.values.items():
            form.addRow(caption, label)
        text = QVBoxLayout()
        text.addWidget(self.version)
        tagline = hint("Signed call webhooks, stored safely and synced to GoHighLevel.")
        tagline.setWordWrap(False)  # wrapped labels make the dialog taller than its text
        text.addWidget(tagline)
        text.addLayout(form)
        text.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(icon)
        top.addLayout(text, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.checks_button = self.buttons.addButton("Run checks…", QDialogButtonBox.ButtonRole.ActionRole)
        self.checks_button.setToolTip("What `callsync doctor` checks: keyring, secrets, data folder, store, "
                                      "ports, public URL, CRM token and clock")
        self.buttons.rejected.connect(self.reject)
        self.checks_button.clicked.connect(self.open_checks)
        self.checks: ChecksDialog | None = None
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)

    def open_checks(self) -> ChecksDialog:
        self.checks = open_checks(self.facade, self)
        return self.checks


def open_checks(facade: Facade, parent: QWidget | None) -> ChecksDialog:
    dialog = ChecksDialog(facade, parent)
    dialog.open()
    dialog.run()
    return dialog


class ChecksDialog(QDialog):
    """The checklist of ``callsync doctor``, run in the background, with a fix for each failure."""

    HEADERS = ("", "Check", "Result", "Fix")

    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.setWindowTitle("callsync checks")
        self.summary = QLabel("Running checks…")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.again = QPushButton("Run again")
        self.again.setEnabled(False)
        self.again.clicked.connect(self.run)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.addButton(self.again, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        self.resize(860, 420)
        self.items: list[Any] | None = None

    @asyncSlot()
    async def run(self) -> None:
        self.again.setEnabled(False)
        self.summary.setText("Running checks…")
        try:
            items = await self.facade.run_checks()
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a message, not a crash
            self.summary.setText(f"The checks could not run: {exc}")
            self.again.setEnabled(True)
            return
        self.show_items(items)
        self.again.setEnabled(True)

    def show_items(self, items: list[Any]) -> None:
        self.items = list(items)
        self.table.setRowCount(len(items))
        for row, item in enumerate(items):
            mark, color = MARKS["fail" if not item.ok else ("note" if item.note else "ok")]
            cells = [mark, item.name, item.detail, item.fix]
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                if column == 0:
                    cell.setForeground(QColor(color))
                self.table.setItem(row, column, cell)
        self.table.resizeRowsToContents()
        failed = [item for item in items if not item.ok]
        passed = len(items) - len(failed)
        self.summary.setText(f"{passed} of {len(items)} checks passed"
                             + (f"; {len(failed)} to fix (see the Fix column)." if failed else "."))
