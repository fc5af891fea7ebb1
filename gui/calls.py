"""Calls: one row per call, and its assembled lifecycle (events, CRM job, delivery log)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from connector.health import format_iso
from connector.model import TERMINAL_STATUSES
from connector.window_export import ExportScope, scope_for
from gui.events import ATTEMPT_HEADERS, RowsModel, attempts_rows, job_summary, origin_text
from gui.export import Exporter
from gui.widgets import (
    IN_PROGRESS,
    OUTCOME_LABELS,
    OUTCOME_TEXTS,
    compact,
    fill_table,
    fit_column,
    fmt_time,
    hint,
    read_only_table,
)

PAGE = 100


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = int(value)
    return f"{value // 60}m {value % 60:02d}s" if value >= 60 else f"{value}s"


class CallsModel(RowsModel):
    columns = (
        ("Updated", "updated_at"),
        ("Phone", "phone"),
        ("Call id", "call_id"),
        ("Source", "source"),
        ("Status", "status"),
        ("Outcome", "outcome"),
        ("Talk", "talk_seconds"),
        ("Agent", "agent"),
        ("Events", "event_count"),
    )
    time_keys = ("updated_at",)

    def display(self, row: dict[str, Any], key: str) -> str:
        if key == "updated_at":
            return fmt_time(row.get(key))
        if key == "talk_seconds":
            return fmt_seconds(row.get(key))
        if key == "outcome":
            return outcome_text(row)
        if key == "status" and row.get("incomplete"):
            return f"{row.get('status') or ''} (incomplete)".strip()
        return super().display(row, key)


def outcome_text(call: dict[str, Any]) -> str:
    outcome = call.get("outcome")
    if outcome:
        return OUTCOME_LABELS.get(outcome, outcome)
    return "" if call.get("status") in TERMINAL_STATUSES else IN_PROGRESS


TIME_FIELDS = ("initiated_at", "answered_at", "ended_at")
LIFECYCLE_FIELDS = (
    ("Status", "status"),
    ("Outcome", "outcome"),
    ("Direction", "direction"),
    ("From → to", None),
    ("Initiated", "initiated_at"),
    ("Answered", "answered_at"),
    ("Ended", "ended_at"),
    ("Ring / talk", None),
    ("Disposition", "disposition"),
    ("Hangup", None),
    ("Agent / campaign", None),
    ("Recording", "recording_url"),
)


class CallInspector(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select a call to see its lifecycle.")
        self.title.setWordWrap(True)
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        for caption, _ in LIFECYCLE_FIELDS:
            label = QLabel("")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.values[caption] = label
            form.addRow(caption, label)
        summary = QWidget()
        summary.setLayout(form)
        self.events = read_only_table()
        self.job = hint("")
        self.attempts = read_only_table()
        log = QWidget()
        log_layout = QVBoxLayout(log)
        log_layout.setContentsMargins(0, 4, 0, 0)
        log_layout.addWidget(self.job)
        log_layout.addWidget(self.attempts, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(summary, "Lifecycle")
        self.tabs.addTab(self.events, "Events")
        self.tabs.addTab(log, "Delivery log")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.tabs, 1)

    def show_call(self, call: dict[str, Any] | None) -> None:
        if call is None:
            self.title.setText("This call is gone.")
            return
        self.title.setText(f"<b>{call['source']}/{call['call_id']}</b> — {call.get('phone') or 'no number'}")
        value = {
            "From → to": f"{call.get('from_number') or '?'} → {call.get('to_number') or '?'}",
            "Ring / talk": " / ".join(fmt_seconds(call.get(k)) or "—" for k in ("ring_seconds", "talk_seconds")),
            "Hangup": " ".join(str(v) for v in (call.get("hangup_cause"), call.get("sip_code") and
                                                 f"SIP {call['sip_code']}") if v),
            "Agent / campaign": " / ".join(str(v) for v in (call.get("agent"), call.get("campaign")) if v),
        }
        value["Outcome"] = outcome_text(call)
        for caption, key in LIFECYCLE_FIELDS:
            text = value.get(caption) if caption in value else call.get(key)
            if key in TIME_FIELDS:
                text = format_iso(text)
            self.values[caption].setText("" if text is None else str(text))
        fill_table(self.events, ["#", "Received", "Type", "Status", "Occurred", "Outcome", "Origin"], [
            [e["id"], fmt_time(e["received_at"]), e["event_type"], e["status"] or "", format_iso(e["occurred_at"]),
             OUTCOME_LABELS.get(e["outcome"], e["outcome"]) if e["outcome"] else "", origin_text(e.get("origin"))]
            for e in call.get("events") or []
        ])
        self.job.setText(job_summary(call))
        fill_table(self.attempts, ATTEMPT_HEADERS, attempts_rows(call.get("attempts") or []))


class CallsView(QWidget):
    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.model = CallsModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        compact(self.table)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # call ids give way, elided in the middle
        for column, width in enumerate((110, 130, 300, 80, 100, 100, 70, 90, 60)):
            self.table.setColumnWidth(column, width)
        fit_column(self.table, 4, [*OUTCOME_TEXTS, *(f"{t} (incomplete)" for t in OUTCOME_TEXTS)])
        fit_column(self.table, 5, OUTCOME_TEXTS)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Phone number or call id")
        self.search.setClearButtonEnabled(True)
        self.go = QPushButton("Search")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save these calls (the search above) to a CSV or JSON Lines file")
        self.exporter = Exporter(facade, "calls", self)
        self.search_as: tuple[str, str | None] = ("", None)  # the search the table shows, and how it was read
        self.status = QLabel("")
        self.refresh_button = QPushButton("Refresh")
        self.more = QPushButton("Load more")
        self.more.setEnabled(False)
        self.inspector = CallInspector()
        below = QHBoxLayout()
        below.addWidget(self.status, 1)
        below.addWidget(self.refresh_button)
        below.addWidget(self.more)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(self.go)
        bar.addWidget(self.export_button)
        left_layout.addLayout(bar)
        left_layout.addWidget(self.table, 1)
        left_layout.addLayout(below)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(left)
        split.addWidget(self.inspector)
        split.setSizes([400, 330])
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self._next_before: float | None = None
        self.refresh_button.clicked.connect(self.reload)
        self.go.clicked.connect(self.reload)
        self.search.returnPressed.connect(self.reload)
        self.more.clicked.connect(self.load_more)
        self.export_button.clicked.connect(self.open_export)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)

    @asyncSlot()
    async def reload(self) -> None:
        page = await self.facade.calls_page(self.search.text(), limit=PAGE)
        selected = self._selected_key()  # as it is now: a row picked while the page loaded stays picked
        self.model.set_rows(page["calls"])
        self._next_before = page["next_before"]
        self.more.setEnabled(self._next_before is not None)
        self._show_status(page.get("search_as"))
        if selected:
            for row, call in enumerate(self.model.rows):
                if (call["source"], call["call_id"]) == selected:
                    self.table.selectRow(row)
                    break

    async def refresh_new(self) -> None:
        if len(self.model.rows) <= PAGE:
            await self.reload()

    @asyncSlot()
    async def load_more(self) -> None:
        if self._next_before is None:
            return
        page = await self.facade.calls_page(self.search.text(), before=self._next_before, limit=PAGE)
        self.model.append_rows(page["calls"])
        self._next_before = page["next_before"]
        self.more.setEnabled(self._next_before is not None)
        self._show_status(page.get("search_as"))

    def export_scope(self) -> ExportScope:
        text = self.search.text().strip()
        return scope_for("calls", text, self.search_as[1] if self.search_as[0] == text else None)

    def open_export(self) -> None:
        self.exporter.open_dialog(self.export_scope())

    def _show_status(self, search_as: str | None) -> None:
        self.search_as = (self.search.text().strip(), search_as)
        what = {"phone": " for this phone number", "call_id": " with this call id"}.get(search_as or "", "")
        self.status.setText(f"{len(self.model.rows):,} call(s){what}, most recently updated first")

    def _selected_key(self) -> tuple[str, str] | None:
        index = self.table.currentIndex()
        if not index.isValid() or index.row() >= len(self.model.rows):
            return None
        row = self.model.rows[index.row()]
        return row["source"], row["call_id"]

    @asyncSlot(QModelIndex, QModelIndex)
    async def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or current.row() >= len(self.model.rows):
            return
        key = self.model.rows[current.row()]["source"], self.model.rows[current.row()]["call_id"]
        detail = await self.facade.call_detail(*key)
        if self._selected_key() == key:  # the selection may have moved on while we read
            self.inspector.show_call(detail)
