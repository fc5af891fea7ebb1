"""Small widgets and formatting shared by the views (no business rules here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from connector.health import format_age, format_time
from connector.model import OUTCOMES, STATUS_RANK, TERMINAL_STATUSES

LEVEL_COLORS = {"ok": "#2e7d32", "warn": "#e65100", "error": "#c62828", "info": "#1565c0"}
LEVEL_BACKGROUNDS = {"ok": "#e8f5e9", "warn": "#fff3e0", "error": "#ffebee", "info": "#e3f2fd"}
OUTCOME_COLORS = {
    "connected": "#43a047",
    "sale": "#00796b",
    "no_answer": "#90a4ae",
    "busy": "#ffb300",
    "voicemail": "#8e24aa",
    "failed": "#e53935",
    "abandoned": "#fb8c00",
    "canceled": "#6d4c41",
    "": "#cfd8dc",
}
OUTCOME_LABELS = {"": "in progress / other", "no_answer": "no answer"}
IN_PROGRESS = "in progress"
TEST_MARK = " (test)"
TEST_TIP = "Sent with “Send test event”: never a call in progress, never written to the CRM."
# Every text an outcome or status cell can show: those columns are made wide enough for all of them.
OUTCOME_TEXTS = [OUTCOME_LABELS.get(o, o) for o in OUTCOMES] + [IN_PROGRESS, *STATUS_RANK, *TERMINAL_STATUSES]


def fmt_count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_bytes(value: float | None) -> str:
    """``1.2 GB``, ``340 MB``, ``12 KB``, ``512 B`` (powers of 1024, as file managers show sizes)."""
    if value is None:
        return "—"
    size, units = float(value), ("B", "KB", "MB", "GB", "TB")
    step = 0
    while size >= 1024 and step < len(units) - 1:
        size /= 1024
        step += 1
    if step == 0:
        return f"{int(size)} B"
    return f"{size:.1f} {units[step]}" if size < 10 else f"{size:.0f} {units[step]}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def fmt_age(seconds: float | None) -> str:
    return "—" if not seconds else format_age(seconds)


def fmt_time(ts: float | None) -> str:
    """Local time, short: ``14:02:11`` today, ``3 Jun 14:02`` earlier."""
    return format_time(ts)


def full_time(ts: float | None) -> str:
    """Local date and time with the time zone, for tooltips."""
    return datetime.fromtimestamp(ts).astimezone().strftime("%a %d %b %Y %H:%M:%S %Z") if ts else ""


def fit_column(table: QAbstractItemView, column: int, texts: list[str], margin: int = 28) -> None:
    """Widen ``column`` so that none of ``texts`` is elided (never narrows it)."""
    metrics = table.fontMetrics()
    needed = max((metrics.horizontalAdvance(t) for t in texts), default=0) + margin
    if table.columnWidth(column) < needed:  # type: ignore[attr-defined]
        table.setColumnWidth(column, needed)  # type: ignore[attr-defined]


def monospace() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSize(max(font.pointSize(), 9))
    return font


def dot_icon(color: str, size: int = 64) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(color))
    painter.setPen(QColor("#ffffff"))
    painter.drawEllipse(4, 4, size - 8, size - 8)
    painter.end()
    return QIcon(pixmap)


APP_ICON_PATH = Path(__file__).parent / "assets" / "callsync.png"


def app_icon() -> QIcon:
    """The callsync icon (window, taskbar, About)."""
    return QIcon(str(APP_ICON_PATH))


def health_icon(level: str, size: int = 64) -> QIcon:
    """The app icon with a dot of the health colour in its corner (tray and window while running)."""
    pixmap = QPixmap(str(APP_ICON_PATH)).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(LEVEL_COLORS.get(level, LEVEL_COLORS["info"])))
    painter.setPen(QColor("#ffffff"))
    dot = size * 7 // 16
    painter.drawEllipse(size - dot - 1, size - dot - 1, dot, dot)
    painter.end()
    return QIcon(pixmap)


def heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setPointSize(font.pointSize() + 2)
    font.setBold(True)
    label.setFont(font)
    return label


def hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #546e7a;")
    return label


class Tile(QFrame):
    """One number on the dashboard: a caption, a big value and a small hint."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tile")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#tile { background: #ffffff; border: 1px solid #dfe3e8; border-radius: 6px; }")
        self.caption = QLabel(caption.upper())
        self.caption.setStyleSheet("color: #607d8b; font-size: 8pt; font-weight: bold;")
        self.value = QLabel("—")
        font = self.value.font()
        font.setPointSize(font.pointSize() + 8)
        font.setBold(True)
        self.value.setFont(font)
        self.detail = QLabel("")
        self.detail.setStyleSheet("color: #78909c; font-size: 8pt;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        layout.addWidget(self.caption)
        layout.addWidget(self.value)
        layout.addWidget(self.detail)

    def set(self, value: str, detail: str = "", level: str | None = None) -> None:
        self.value.setText(value)
        self.detail.setText(detail)
        self.value.setStyleSheet(f"color: {LEVEL_COLORS[level]};" if level else "color: #263238;")


class Banner(QFrame):
    """A coloured one-line message with an optional action button."""

    action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton()
        self.button.clicked.connect(self.action)
        self.button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        self.level = "info"

    def set_message(self, level: str, text: str, button: str | None = None) -> None:
        self.level = level
        color, background = LEVEL_COLORS[level], LEVEL_BACKGROUNDS[level]
        self.setStyleSheet(
            f"#banner {{ background: {background}; border: 1px solid {color}; border-radius: 6px; }}"
            f"#banner QLabel {{ color: {color}; }}"
        )
        self.icon.setPixmap(dot_icon(color, 16).pixmap(16, 16))
        self.text.setText(text)
        self.button.setVisible(bool(button))
        if button:
            self.button.setText(button)


class CopyField(QWidget):
    """A read-only value with a Copy button (webhook URLs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setReadOnly(True)
        self.button = QPushButton("Copy")
        self.button.clicked.connect(self.copy)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)

    def set_text(self, text: str, placeholder: str = "") -> None:
        self.edit.setText(text)
        self.edit.setPlaceholderText(placeholder)
        self.button.setEnabled(bool(text))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.edit.text())
        self.button.setText("Copied")


class Confirm(QFrame):
    """Inline "are you sure?" bar (no nested modal loop inside async code)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confirm")
        self.setStyleSheet("#confirm { background: #fff8e1; border: 1px solid #ffb300; border-radius: 4px; }")
        self.text = QLabel()
        self.yes = QPushButton("Confirm")
        self.no = QPushButton("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.yes)
        layout.addWidget(self.no)
        self._on_yes: Callable[[], Any] | None = None
        self.yes.clicked.connect(self._accept)
        self.no.clicked.connect(self.hide)
        self.hide()

    def ask(self, text: str, yes: str, on_yes: Callable[[], Any]) -> None:
        self.text.setText(text)
        self.yes.setText(yes)
        self._on_yes = on_yes
        self.show()

    def _accept(self) -> None:
        self.hide()
        if self._on_yes is not None:
            self._on_yes()


def fill_table(table: QTableWidget, headers: list[str], rows: list[list[Any]]) -> None:
    table.clear()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem("" if value is None else str(value))
            item.setToolTip(item.text())
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    for column in range(table.columnCount()):
        table.setColumnWidth(column, min(table.columnWidth(column), 420))


def compact(table: QAbstractItemView) -> QAbstractItemView:
    """One line per row, no wrapping: long values are elided and shown in full as a tooltip."""
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    header = table.verticalHeader()
    header.hide()
    header.setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    table.setAlternatingRowColors(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    return table


def read_only_table() -> QTableWidget:
    table = QTableWidget()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    compact(table)
    return table
