"""Export from the Calls and Events tabs: the file dialog, the progress dialog, the closing message.

The export itself runs on a thread (``Facade.export``): the window and the webhooks keep going, and
Cancel stops it at the next row with no file left behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from PySide6.QtCore import QDateTime, QObject, QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from connector.window_export import (
    FORMAT_SUFFIXES,
    ExportJob,
    ExportOutcome,
    ExportRequest,
    ExportScope,
    count_text,
    default_path,
    scope_text,
    with_format,
)
from gui.widgets import hint

DAY = 24 * 3600
RANGES = (("All time", None), ("Last 24 hours", DAY), ("Last 7 days", 7 * DAY), ("Last 30 days", 30 * DAY),
          ("Between…", "custom"))
FORMATS = (("CSV (.csv)", "csv"), ("JSON Lines (.jsonl)", "jsonl"))
FILE_FILTERS = {"csv": "CSV (*.csv)", "jsonl": "JSON Lines (*.jsonl)"}
TIME_WORDS = {"calls": "Calls updated", "events": "Events received"}


def start_dir() -> Path:
    for location in (QStandardPaths.StandardLocation.DocumentsLocation, QStandardPaths.StandardLocation.HomeLocation):
        folder = QStandardPaths.writableLocation(location)
        if folder and Path(folder).is_dir():
            return Path(folder)
    return Path.home()


class ExportDialog(QDialog):
    """What to export (time range, format) and where to; the tab's search and filters come along."""

    def __init__(self, kind: str, scope: ExportScope, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind, self.scope = kind, scope
        self.setWindowTitle(f"Export {kind}")
        self.range = QComboBox()
        for label, seconds in RANGES:
            self.range.addItem(label, seconds)
        now = QDateTime.currentDateTime()
        self.since = QDateTimeEdit(now.addDays(-7))
        self.until = QDateTimeEdit(now.addSecs(60))
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("d MMM yyyy HH:mm")
        between = QHBoxLayout()
        between.addWidget(self.since)
        between.addWidget(QLabel("to"))
        between.addWidget(self.until)
        self.format = QComboBox()
        for label, fmt in FORMATS:
            self.format.addItem(label, fmt)
        self.path = QLineEdit(str(default_path(folder, kind, "csv", time.time())))
        self.browse = QPushButton("Choose…")
        where = QHBoxLayout()
        where.addWidget(self.path, 1)
        where.addWidget(self.browse)
        self.scope_note = hint(scope_text(kind, scope))
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c62828;")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        form.addRow(TIME_WORDS.get(kind, "Time"), self.range)
        form.addRow("", between)
        form.addRow("Format", self.format)
        form.addRow("File", where)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.scope_note)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(680)
        self.file_dialog: QFileDialog | None = None

        self.range.currentIndexChanged.connect(self._range_changed)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.browse.clicked.connect(self.choose_file)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._range_changed()

    def _range_changed(self) -> None:
        custom = self.range.currentData() == "custom"
        self.since.setEnabled(custom)
        self.until.setEnabled(custom)

    def _format_changed(self) -> None:
        text = self.path.text().strip()
        if text:
            self.path.setText(str(with_format(Path(text), self.format.currentData())))

    def choose_file(self) -> None:
        fmt = self.format.currentData()
        dialog = QFileDialog(self, f"Export {self.kind} to", self.path.text().strip(),
                             ";;".join(FILE_FILTERS[f] for _, f in FORMATS))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.selectNameFilter(FILE_FILTERS[fmt])
        dialog.setDefaultSuffix(FORMAT_SUFFIXES[fmt].lstrip("."))
        dialog.fileSelected.connect(self._file_chosen)
        self.file_dialog = dialog
        dialog.open()

    def _file_chosen(self, name: str) -> None:
        if not name:
            return
        chosen = self.file_dialog.selectedNameFilter() if self.file_dialog else ""
        fmt = next((f for f, label in FILE_FILTERS.items() if label == chosen), self.format.currentData())
        if Path(name).suffix.lower() in FORMAT_SUFFIXES.values():  # the name's suffix says which format
            fmt = next(f for f, s in FORMAT_SUFFIXES.items() if s == Path(name).suffix.lower())
        self.format.blockSignals(True)
        self.format.setCurrentIndex(self.format.findData(fmt))
        self.format.blockSignals(False)
        self.path.setText(str(with_format(Path(name), fmt)))

    def request(self, now: float | None = None) -> ExportRequest:
        now = time.time() if now is None else now
        seconds = self.range.currentData()
        since = until = None
        if seconds == "custom":
            since, until = float(self.since.dateTime().toSecsSinceEpoch()), float(self.until.dateTime().toSecsSinceEpoch())
        elif seconds:
            since = now - seconds
        return ExportRequest(self.kind, Path(self.path.text().strip()).expanduser(), self.format.currentData(),
                             since, until, dict(self.scope.match))

    def problem(self) -> str | None:
        """Why the dialog cannot export as filled in (shown under the form), or None."""
        text = self.path.text().strip()
        if not text:
            return "Choose a file to export to."
        path = Path(text).expanduser()
        if path.is_dir():
            return f"{path} is a folder: add a file name."
        if not path.parent.is_dir():
            return f"The folder {path.parent} does not exist."
        if self.range.currentData() == "custom" and self.since.dateTime() >= self.until.dateTime():
            return "The start of the time range must be before its end."
        return None

    def accept(self) -> None:
        problem = self.problem()
        self.error.setText(problem or "")
        self.error.setVisible(bool(problem))
        if problem is None:
            super().accept()


class Exporter(QObject):
    """One tab's exports: opens the dialog, runs the export with a progress dialog, says how it went."""

    finished = Signal(object)  # ExportOutcome

    def __init__(self, facade: Facade, kind: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.facade, self.kind, self.parent_widget = facade, kind, parent
        self.folder: Path | None = None
        self.dialog: ExportDialog | None = None
        self.progress: QProgressDialog | None = None
        self.result_box: QMessageBox | None = None
        self.job: ExportJob | None = None
        self.last_progress: tuple[int, int] | None = None
        self.outcome: ExportOutcome | None = None

    @property
    def running(self) -> bool:
        return self.job is not None

    def open_dialog(self, scope: ExportScope) -> ExportDialog:
        if self.running and self.progress is not None:
            self.progress.raise_()
            return self.dialog  # type: ignore[return-value]
        dialog = ExportDialog(self.kind, scope, self.folder or start_dir(), self.parent_widget)
        dialog.accepted.connect(lambda: self.run(dialog.request()))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _on_progress(self, done: int, total: int) -> None:
        self.last_progress = (done, total)
        dialog = self.progress
        if dialog is None or dialog.wasCanceled():
            return
        dialog.setMaximum(max(total, 1))
        dialog.setValue(min(done, max(total, 1)))
        dialog.setLabelText(f"{done:,} of {count_text(self.kind, total)} written…")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    @asyncSlot(object)
    async def run(self, request: ExportRequest) -> None:
        self.folder = request.path.parent
        self.job = job = ExportJob()
        self.last_progress, self.outcome = None, None
        progress = QProgressDialog(f"Exporting {self.kind}…", "Cancel", 0, 0, self.parent_widget)
        progress.setWindowTitle(f"Export {self.kind}")
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.setMinimumDuration(0)
        progress.setMinimumWidth(420)
        progress.canceled.connect(job.cancel)
        self.progress = progress
        progress.show()
        try:
            outcome = await self.facade.export(request, job, self._on_progress)
        except asyncio.CancelledError:  # the window is closing: stop the thread's export too
            job.cancel()
            progress.hide()
            raise
        finally:
            self.job = None
        progress.canceled.disconnect(job.cancel)
        progress.hide()  # not close(): closing a progress dialog cancels and resets it
        self.outcome = outcome
        self.show_outcome(outcome)
        self.finished.emit(outcome)

    def show_outcome(self, outcome: ExportOutcome) -> None:
        icon = QMessageBox.Icon.Information if outcome.ok or outcome.cancelled else QMessageBox.Icon.Warning
        box = QMessageBox(icon, f"Export {self.kind}", outcome.message, QMessageBox.StandardButton.Ok,
                          self.parent_widget)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_box = box
        box.open()
