"""Events: a paged, searchable table over the store, and the inspector of one event."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from connector.health import job_status_text
from connector.model import OUTCOMES
from connector.window_export import ExportScope, scope_for
from gui.export import Exporter
from gui.widgets import (
    OUTCOME_LABELS,
    OUTCOME_TEXTS,
    TEST_MARK,
    TEST_TIP,
    compact,
    fill_table,
    fit_column,
    fmt_ms,
    fmt_time,
    full_time,
    hint,
    monospace,
    read_only_table,
)

PAGE = 100
Index = QModelIndex | QPersistentModelIndex


class RowsModel(QAbstractTableModel):
    """A list of dicts shown as columns ``(header, key)``; rows are appended or prepended by pages."""

    columns: tuple[tuple[str, str], ...] = ()
    time_keys: tuple[str, ...] = ()  # unix times: shown local and short, in full as the tooltip

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section][0]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        key = self.columns[index.column()][1]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.display(row, key)
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.get("test"):
                return TEST_TIP
            return full_time(row.get(key)) if key in self.time_keys else self.display(row, key)
        if role == Qt.ItemDataRole.ForegroundRole and row.get("test"):
            return QColor("#78909c")
        return None

    def display(self, row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def append_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(rows) - 1)
            self.rows.extend(rows)
            self.endInsertRows()

    def prepend_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
            self.rows[:0] = rows
            self.endInsertRows()


class EventsModel(RowsModel):
    columns = (
        ("Time", "received_at"),
        ("Phone", "phone"),
        ("Call id", "call_id"),
        ("Type", "event_type"),
        ("Source", "source"),
        ("Outcome", "outcome"),
        ("Origin", "origin"),
    )
    time_keys = ("received_at",)

    def display(self, row: dict[str, Any], key: str) -> str:
        if key == "received_at":
            return fmt_time(row.get(key))
        if key == "outcome":
            outcome = row.get("outcome")
            text = OUTCOME_LABELS.get(outcome, outcome) if outcome else (row.get("status") or "")
            return text + TEST_MARK if row.get("test") else text
        if key == "origin":
            return origin_text(row.get("origin"))
        return super().display(row, key)


def origin_text(origin: str | None) -> str:
    """How an event arrived: its sender's webhook, or the provider's call log (reconciliation)."""
    return "call log (reconciled)" if origin == "reconcile" else "webhook"


def attempts_rows(attempts: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [fmt_time(a["at"]), a["kind"], f"{a['method']} {a['path']}", a["status"] or "—", fmt_ms(a["duration_ms"]),
         a["trace_id"] or "", a["error"] or (a["response"] or "")[:160]]
        for a in attempts
    ]


ATTEMPT_HEADERS = ["Time", "Step", "Request", "Status", "Took", "Trace id", "Response / error"]


def job_summary(detail: dict[str, Any]) -> str:
    """Where the CRM job of an event's or call's detail stands; while it waits, why and until when."""
    return job_status_text(detail.get("job"), detail.get("crm") or {}, detail.get("now") or 0.0,
                           test=bool(detail.get("test")))


class EventInspector(QWidget):
    """Payload, headers, normalized event and the delivery log of the event's call."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select an event to inspect it.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.payload = self._text()
        self.headers = self._text()
        self.normalized = self._text()
        self.job = hint("")
        self.attempts = read_only_table()
        log = QWidget()
        log_layout = QVBoxLayout(log)
        log_layout.setContentsMargins(0, 4, 0, 0)
        log_layout.addWidget(self.job)
        log_layout.addWidget(self.attempts, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.payload, "Payload")
        self.tabs.addTab(self.headers, "Headers")
        self.tabs.addTab(self.normalized, "Normalized")
        self.tabs.addTab(log, "Delivery log")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.tabs, 1)

    @staticmethod
    def _text() -> QPlainTextEdit:
        edit = QPlainTextEdit()
        edit.setReadOnly(True)
        edit.setFont(monospace())
        return edit

    def show_event(self, event: dict[str, Any] | None) -> None:
        if event is None:
            self.title.setText("This event is gone.")
            return
        call = f"call {event['call_id']}" if event.get("call_id") else "not about a call"
        test = " — <i>a test event: never a call, never written to the CRM</i>" if event.get("test") else ""
        self.title.setText(f"<b>#{event['id']} {event['event_type']}</b> from <b>{event['source']}</b>, {call}, "
                           f"received {full_time(event['received_at'])} ({event.get('content_type') or '?'}){test}")
        self.payload.setPlainText(event["payload"])
        self.headers.setPlainText("\n".join(f"{k}: {v}" for k, v in sorted(event["headers"].items())))
        self.normalized.setPlainText(json.dumps(event.get("event") or {}, indent=2, sort_keys=True))
        self.job.setText(job_summary(event))
        fill_table(self.attempts, ATTEMPT_HEADERS, attempts_rows(event.get("attempts") or []))


class EventsView(QWidget):
    event_selected = Signal(int)

    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.search = QLineEdit()
        self.search.setPlaceholderText("Phone number or call id")
        self.search.setClearButtonEnabled(True)
        self.source = QComboBox()
        self.event_type = QComboBox()
        self.outcome = QComboBox()
        self.outcome.addItem("Any outcome", "")
        for outcome in OUTCOMES:
            self.outcome.addItem(OUTCOME_LABELS.get(outcome, outcome), outcome)
        self.go = QPushButton("Search")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save these events (the search and filters above) to a CSV or JSON Lines file")
        self.exporter = Exporter(facade, "events", self)
        self.status = QLabel("")
        self.more = QPushButton("Load more")
        self.more.setEnabled(False)
        self.search_as: tuple[str, str | None] = ("", None)  # the search the table shows, and how it was read

        self.model = EventsModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        compact(self.table)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # call ids give way, elided in the middle
        for column, width in enumerate((110, 130, 300, 180, 90)):
            self.table.setColumnWidth(column, width)
        fit_column(self.table, 5, [t + TEST_MARK for t in OUTCOME_TEXTS])
        self.inspector = EventInspector()

        bar = QHBoxLayout()
        bar.addWidget(self.search, 2)
        bar.addWidget(self.source)
        bar.addWidget(self.event_type)
        bar.addWidget(self.outcome)
        bar.addWidget(self.go)
        bar.addWidget(self.export_button)
        below = QHBoxLayout()
        below.addWidget(self.status, 1)
        below.addWidget(self.more)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(bar)
        left_layout.addWidget(self.table, 1)
        left_layout.addLayout(below)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(left)
        split.addWidget(self.inspector)
        split.setSizes([430, 300])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

        self._next_before: int | None = None
        self._filters_key: tuple[Any, ...] | None = None
        self._pending_select: int | None = None
        self._busy = False
        self.go.clicked.connect(self.reload)
        self.search.returnPressed.connect(self.reload)
        for combo in (self.source, self.event_type, self.outcome):
            combo.activated.connect(self.reload)
        self.more.clicked.connect(self.load_more)
        self.export_button.clicked.connect(self.open_export)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        self._fill_combos([], [])

    # -- filters ------------------------------------------------------------------
    def _fill_combos(self, sources: list[str], types: list[str]) -> None:
        for combo, label, values in ((self.source, "Any source", sources), (self.event_type, "Any type", types)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(label, "")
            for value in values:
                combo.addItem(value, value)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)

    def filters(self) -> dict[str, Any]:
        return {"source": self.source.currentData() or None, "event_type": self.event_type.currentData() or None,
                "outcome": self.outcome.currentData() or None}

    # -- loading ------------------------------------------------------------------
    @asyncSlot()
    async def reload(self) -> None:
        """First page for the current search and filters (also refreshes the filter lists)."""
        self._fill_combos(sorted(self.facade.config.sources), await self.facade.event_types())
        page = await self.facade.events_page(self.search.text(), limit=PAGE, **self.filters())
        if self._pending_select is None:
            self._pending_select = self.selected_id()  # keep the selection across a reload
        self.model.set_rows(page["events"])
        self._next_before = page["next_before_id"]
        self.more.setEnabled(self._next_before is not None)
        self._show_status(page.get("search_as"))
        self._select_pending()

    @asyncSlot()
    async def load_more(self) -> None:
        if self._next_before is None:
            return
        page = await self.facade.events_page(self.search.text(), before_id=self._next_before, limit=PAGE,
                                             **self.filters())
        self.model.append_rows(page["events"])
        self._next_before = page["next_before_id"]
        self.more.setEnabled(self._next_before is not None)
        self._show_status(page.get("search_as"))

    async def refresh_new(self) -> None:
        """Put events that arrived since the last load on top (keeps the selection and loaded pages)."""
        if self._busy:
            return
        self._busy = True
        try:
            page = await self.facade.events_page(self.search.text(), limit=PAGE, **self.filters())
            top = self.model.rows[0]["id"] if self.model.rows else 0
            new = [e for e in page["events"] if e["id"] > top]
            if not self.model.rows or len(new) == len(page["events"]):
                if self._pending_select is None:
                    self._pending_select = self.selected_id()
                self.model.set_rows(page["events"])  # first load, or more arrived than one page: start over
                self._next_before = page["next_before_id"]
                self.more.setEnabled(self._next_before is not None)
            else:
                self.model.prepend_rows(new)
            self._show_status(page.get("search_as"))
            self._select_pending()
        finally:
            self._busy = False

    def export_scope(self) -> ExportScope:
        text = self.search.text().strip()
        read_as = self.search_as[1] if self.search_as[0] == text else None
        return scope_for("events", text, read_as, self.filters())

    def open_export(self) -> None:
        self.exporter.open_dialog(self.export_scope())

    def _show_status(self, search_as: str | None) -> None:
        self.search_as = (self.search.text().strip(), search_as)
        shown = len(self.model.rows)
        more = " (more below)" if self._next_before is not None else ""
        what = {"phone": " for this phone number", "call_id": " for this call id"}.get(search_as or "", "")
        self.status.setText(f"{shown:,} event(s){what}{more}")

    # -- selection ----------------------------------------------------------------
    def select_event(self, event_id: int) -> None:
        """Select an event once it is in the table (used after "Send test event")."""
        self._pending_select = event_id
        self._select_pending()

    def _select_pending(self) -> None:
        if self._pending_select is None:
            return
        for row, event in enumerate(self.model.rows):
            if event["id"] == self._pending_select:
                self._pending_select = None
                self.table.selectRow(row)
                self.table.scrollTo(self.model.index(row, 0))
                return

    @asyncSlot(QModelIndex, QModelIndex)
    async def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or current.row() >= len(self.model.rows):
            return
        event_id = self.model.rows[current.row()]["id"]
        detail = await self.facade.event_detail(event_id)
        if self.selected_id() == event_id:  # the selection may have moved on while we read
            self.inspector.show_event(detail)
            self.event_selected.emit(event_id)

    def selected_id(self) -> int | None:
        index = self.table.currentIndex()
        valid = index.isValid() and index.row() < len(self.model.rows)
        return self.model.rows[index.row()]["id"] if valid else None
