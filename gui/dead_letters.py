"""Dead letters: calls the CRM sync gave up on, with replay and discard."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from gui.events import RowsModel
from gui.widgets import OUTCOME_LABELS, Confirm, compact, fmt_time, hint

PROGRESS_POLL_SECONDS = 0.3


class DeadModel(RowsModel):
    columns = (
        ("Job", "id"),
        ("Failed", "updated_at"),
        ("Call", "call"),
        ("Phone", "phone"),
        ("Outcome", "outcome"),
        ("Tries", "attempts"),
        ("Last error", "last_error"),
    )

    def display(self, row: dict[str, Any], key: str) -> str:
        if key == "updated_at":
            return fmt_time(row.get(key))
        if key == "call":
            return f"{row['source']}/{row['call_id']}"
        if key == "outcome":
            return OUTCOME_LABELS.get(row.get(key) or "", row.get(key) or "")
        return super().display(row, key)


class DeadLettersView(QWidget):
    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.model = DeadModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        compact(self.table)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)  # the error's reason follows its request line
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        for column, width in enumerate((50, 80, 280, 120, 85, 45)):
            self.table.setColumnWidth(column, width)
        self.replay_selected = QPushButton("Replay selected")
        self.replay_all = QPushButton("Replay all")
        self.discard_selected = QPushButton("Discard selected")
        self.confirm = Confirm()
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.replay_selected)
        buttons.addWidget(self.replay_all)
        buttons.addWidget(self.discard_selected)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Calls the CRM sync gave up on (rejected by GoHighLevel, or still failing after every "
                              "retry). Fix the cause — usually the token, a custom field or the contact — then "
                              "replay them: steps that already happened (note, callback count) are not repeated."))
        layout.addLayout(buttons)
        layout.addWidget(self.confirm)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self.replay_selected.clicked.connect(self.on_replay_selected)
        self.replay_all.clicked.connect(self.on_replay_all)
        self.discard_selected.clicked.connect(self.ask_discard)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def selected_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.model.rows[r]["id"] for r in rows if r < len(self.model.rows)]

    def _update_buttons(self) -> None:
        chosen = bool(self.selected_ids())
        self.replay_selected.setEnabled(chosen)
        self.discard_selected.setEnabled(chosen)
        self.replay_all.setEnabled(bool(self.model.rows))

    async def _load(self) -> list[dict[str, Any]]:
        rows = await self.facade.dead_letters()
        self.model.set_rows(rows)
        self._update_buttons()
        return rows

    @asyncSlot()
    async def reload(self) -> None:
        rows = await self._load()
        if not self.progress.isVisible():
            self._show_count(rows)

    def _show_count(self, rows: list[dict[str, Any]]) -> None:
        self.status.setText(f"{len(rows)} dead letter(s)." if rows else "No dead letters: every call synced "
                                                                       "or is still being retried.")

    async def refresh_new(self) -> None:
        """Live refresh: the list follows the store; the result of the last action stays on screen."""
        if not self.progress.isVisible():
            await self._load()

    @asyncSlot()
    async def on_replay_selected(self) -> None:
        ids = self.selected_ids()
        if ids:
            await self._replay(await self.facade.replay(ids))

    @asyncSlot()
    async def on_replay_all(self) -> None:
        await self._replay(await self.facade.replay(all_dead=True))

    async def _replay(self, ids: list[int], timeout: float = 600.0) -> None:
        """Follow re-queued jobs until none is waiting; the bar counts finished ones."""
        if not ids:
            return
        for button in (self.replay_selected, self.replay_all, self.discard_selected):
            button.setEnabled(False)
        self.progress.setRange(0, len(ids))
        self.progress.setValue(0)
        self.progress.setFormat(f"%v of {len(ids)} replayed")
        self.progress.show()
        self.status.setText(f"Replaying {len(ids)} call(s)…")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        text = "Replay interrupted."
        try:
            while True:
                progress = await self.facade.job_progress(ids)
                self.progress.setValue(progress["done"] + progress["dead"])
                if progress["waiting"] == 0 or loop.time() > deadline:
                    break
                await asyncio.sleep(PROGRESS_POLL_SECONDS)
            text = f"Replayed {len(ids)}: {progress['done']} synced"
            if progress["dead"]:
                text += f", {progress['dead']} failed again (see the last error)"
            if progress["waiting"]:
                text += f", {progress['waiting']} still waiting (the CRM is slow or paused)"
            text += "."
        finally:
            self.progress.hide()
            await self._load()
            self.status.setText(text)

    def ask_discard(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.confirm.ask(f"Discard {len(ids)} dead letter(s)? They will not be written to the CRM.",
                             "Discard", lambda: self.discard(ids))

    @asyncSlot()
    async def discard(self, ids: list[int]) -> None:
        count = await self.facade.discard(ids)
        await self._load()
        self.status.setText(f"Discarded {count} dead letter(s).")
