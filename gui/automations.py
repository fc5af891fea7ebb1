"""Automations: every recipe's state with its live figure, agents today, the alert history with its
evidence and deliveries, acknowledge."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from qasync import asyncSlot

from connector.facade import Facade
from gui.events import RowsModel
from gui.widgets import compact, fmt_time, hint

TRIPPED = QColor("#c62828")
OFF = QColor("#90a4ae")


class RecipeModel(RowsModel):
    columns = (("Automation", "title"), ("On", "enabled"), ("Live figure", "figure_text"),
               ("Threshold", "threshold_text"), ("State", "state"), ("Action", "action"))

    def display(self, row: dict[str, Any], key: str) -> str:
        if key == "enabled":
            return "on" if row.get("enabled") else "off"
        if key == "state":
            if not row.get("enabled"):
                return "—"
            tripped = row.get("tripped") or []
            return f"tripped: {', '.join(map(str, tripped[:3]))}{' …' if len(tripped) > 3 else ''}" if tripped else "armed"
        if key == "action":
            return row.get("action") or ("—" if row["name"] != "callback" else "CRM rules")
        return super().display(row, key)

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role == Qt.ItemDataRole.ForegroundRole:
            row = self.rows[index.row()]
            if not row.get("enabled"):
                return OFF
            if row.get("tripped") and self.columns[index.column()][1] == "state":
                return TRIPPED
        if index.isValid() and role == Qt.ItemDataRole.ToolTipRole and self.rows[index.row()].get("note"):
            return self.rows[index.row()]["note"]
        return super().data(index, role)


class AgentModel(RowsModel):
    columns = (("Agent", "agent"), ("Now", "state"), ("Logged in (min)", "logged_in_minutes"),
               ("Paused (min)", "pause_minutes"), ("Pauses", "pauses"), ("This pause (min)", "paused_minutes_now"))


class AlertModel(RowsModel):
    columns = (("Raised", "created_at"), ("Automation", "title"), ("Alert", "message"), ("Seen", "acknowledged_at"))
    time_keys = ("created_at",)

    def display(self, row: dict[str, Any], key: str) -> str:
        if key == "created_at":
            return fmt_time(row.get(key))
        if key == "acknowledged_at":
            return "✓" if row.get(key) else "new"
        return super().display(row, key)

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role == Qt.ItemDataRole.FontRole and not self.rows[index.row()].get("acknowledged_at"):
            font = QFont()
            font.setBold(True)  # not acknowledged yet
            return font
        return super().data(index, role)


def table(model: RowsModel, widths: tuple[int, ...]) -> QTableView:
    view = QTableView()
    view.setModel(model)
    compact(view)
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    for column, width in enumerate(widths):
        view.setColumnWidth(column, width)
    return view


class AutomationsView(QWidget):
    def __init__(self, facade: Facade, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controls = facade.automations
        self.recipes = RecipeModel()
        self.agents = AgentModel()
        self.alerts = AlertModel()
        self.recipe_table = table(self.recipes, (150, 40, 330, 170, 170))
        self.agent_table = table(self.agents, (140, 90, 110, 100, 70))
        self.alert_table = table(self.alerts, (90, 130, 560))
        self.alert_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.alert_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.evidence = QPlainTextEdit()
        self.evidence.setReadOnly(True)
        self.evidence.setPlaceholderText("Select an alert: its evidence (the window's figures and the events that "
                                         "tripped it) and where it was delivered.")
        self.acknowledge_selected = QPushButton("Acknowledge selected")
        self.acknowledge_all = QPushButton("Acknowledge all")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.acknowledge_selected)
        buttons.addWidget(self.acknowledge_all)
        history = QSplitter(Qt.Orientation.Horizontal)
        history.addWidget(self.alert_table)
        history.addWidget(self.evidence)
        history.setSizes([760, 380])
        self.agents_title = QLabel("<b>Agents today</b>")
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Automations watch every stored event: windows per DID, campaign and route, thresholds "
                              "that trip once per crossing. Settings are [automations.*], [actions.*] and [alerts] in "
                              "config.toml (see the README)."))
        layout.addWidget(self.recipe_table, 3)
        layout.addWidget(self.agents_title)
        layout.addWidget(self.agent_table, 2)
        layout.addLayout(buttons)
        layout.addWidget(history, 4)
        self.acknowledge_selected.clicked.connect(self.on_acknowledge_selected)
        self.acknowledge_all.clicked.connect(self.on_acknowledge_all)
        self.alert_table.selectionModel().selectionChanged.connect(self.on_selection)
        self.report: dict[str, Any] = {}
        self._update_buttons()

    def selected_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.alert_table.selectionModel().selectedRows()})
        return [self.alerts.rows[r]["id"] for r in rows if r < len(self.alerts.rows)]

    def _update_buttons(self) -> None:
        self.acknowledge_selected.setEnabled(bool(self.selected_ids()))
        self.acknowledge_all.setEnabled(any(not r.get("acknowledged_at") for r in self.alerts.rows))

    async def _load(self) -> None:
        self.report = await self.controls.report()
        self.recipes.set_rows(self.report["automations"])
        pause = next((r for r in self.report["automations"] if r["name"] == "pause"), {})
        self.agents.set_rows(pause.get("attendance") or [])
        selected = set(self.selected_ids())
        self.alerts.set_rows(await self.controls.alerts())
        for row, alert in enumerate(self.alerts.rows):
            if alert["id"] in selected:
                self.alert_table.selectRow(row)
        deliveries = self.report["deliveries"]
        text = f"{self.report['unacknowledged']} new alert(s)."
        if deliveries["pending"]:
            text += f" {deliveries['pending']} delivery(ies) on their way."
        if deliveries["dead"]:
            text += f" {deliveries['dead']} could not be delivered (Dead letters)."
        if self.report.get("error"):
            text += f" Problem: {self.report['error']}"
        self.summary.setText(text)
        self._update_buttons()

    @asyncSlot()
    async def reload(self) -> None:
        await self._load()

    async def refresh_new(self) -> None:
        await self._load()

    @asyncSlot()
    async def on_selection(self, *_: Any) -> None:
        self._update_buttons()
        ids = self.selected_ids()
        if len(ids) != 1:
            self.evidence.setPlainText("")
            return
        alert = await self.controls.alert(ids[0])
        if alert is None:
            return
        deliveries = [f"{d['call_id'].partition('/')[2]}: {d['status']}" + (f" ({d['last_error']})" if d["last_error"]
                                                                          else "") for d in alert["deliveries"]]
        text = f"{alert['message']}\n\nid {alert['id']}\n\nEvidence\n{json.dumps(alert['evidence'], indent=2)}"
        text += "\n\nDeliveries\n" + ("\n".join(deliveries) if deliveries else "none (no action, no notify URL)")
        self.evidence.setPlainText(text)

    @asyncSlot()
    async def on_acknowledge_selected(self) -> None:
        ids = self.selected_ids()
        if ids:
            await self.controls.acknowledge(ids)
            await self._load()

    @asyncSlot()
    async def on_acknowledge_all(self) -> None:
        ids = [r["id"] for r in self.alerts.rows if not r.get("acknowledged_at")]
        if ids:
            await self.controls.acknowledge(ids)
            await self._load()
