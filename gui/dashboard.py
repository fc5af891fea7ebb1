"""Dashboard: health verdict, counters and the two live charts."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QVBoxLayout, QWidget

from connector.facade import Snapshot
from gui.widgets import (
    OUTCOME_COLORS,
    OUTCOME_LABELS,
    Banner,
    Tile,
    fmt_age,
    fmt_count,
    fmt_ms,
)

pg.setConfigOptions(antialias=True, background="w", foreground="#37474f")

TILES = (
    ("received", "Received"),
    ("processed", "Processed"),
    ("deduped", "Deduped"),
    ("failed", "Failed"),
    ("dead", "Dead"),
    ("p95", "P95 latency"),
    ("queue", "Queue depth"),
    ("oldest", "Oldest pending"),
)
TARGET_BUTTONS = {"crm": "Open CRM", "dead_letters": "Open Dead letters"}


def _plot(title: str, left: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
    plot.setTitle(title, size="10pt", color="#37474f")
    plot.setLabel("left", left)
    plot.showGrid(x=False, y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(200)
    return plot


class Dashboard(QWidget):
    open_tab = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.health = Banner()
        self.health.set_message("info", "Starting…")
        self.health.action.connect(lambda: self._target and self.open_tab.emit(self._target))
        self._target: str | None = None
        self.tiles = {key: Tile(caption) for key, caption in TILES}
        grid = QGridLayout()
        grid.setSpacing(8)
        for index, (key, _) in enumerate(TILES):
            grid.addWidget(self.tiles[key], index // 4, index % 4)

        self.events_plot = _plot("Events per minute by outcome", "events")
        self._legend(self.events_plot.addLegend(offset=(8, 4), labelTextSize="8pt", colCount=4))
        self.latency_plot = _plot("Receipt → CRM latency per minute", "ms")
        self._legend(self.latency_plot.addLegend(offset=(8, 4), labelTextSize="8pt", colCount=2))
        self.p95 = self.latency_plot.plot([], [], name="P95", pen=pg.mkPen("#e53935", width=2),
                                          symbol="o", symbolSize=4, symbolBrush="#e53935", symbolPen=None)
        self.p50 = self.latency_plot.plot([], [], name="P50", pen=pg.mkPen("#1e88e5", width=1.5),
                                          symbol="o", symbolSize=3, symbolBrush="#1e88e5", symbolPen=None)
        self._bars: dict[str, pg.BarGraphItem] = {}
        self._shown: Snapshot | None = None

        charts = QHBoxLayout()
        charts.addWidget(self.events_plot, 1)
        charts.addWidget(self.latency_plot, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.health)
        layout.addLayout(grid)
        layout.addLayout(charts, 1)

    @staticmethod
    def _legend(legend: pg.LegendItem) -> None:
        legend.setBrush(pg.mkBrush(255, 255, 255, 230))
        legend.setPen(pg.mkPen("#dfe3e8"))

    # -- rendering ------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot) -> None:
        if snap is self._shown:
            return
        self._shown = snap
        self._target = snap.target
        self.health.set_message(snap.level, snap.verdict, TARGET_BUTTONS.get(snap.target or ""))
        self._show_tiles(snap.metrics)
        self._show_events(snap)
        self._show_latency(snap)

    def _show_tiles(self, m: dict) -> None:
        latency = m.get("sync_latency_ms") or {}
        rejected = m.get("rejected_total", 0)
        self.tiles["received"].set(fmt_count(m.get("received")),
                                   f"{fmt_count(m.get('stored'))} stored · {fmt_count(rejected)} rejected",
                                   "warn" if rejected and not m.get("stored") else None)
        self.tiles["processed"].set(fmt_count(m.get("processed")), "calls written to the CRM")
        self.tiles["deduped"].set(fmt_count(m.get("deduped")), "repeats ignored")
        failed = m.get("failed", 0)
        self.tiles["failed"].set(fmt_count(failed), f"{fmt_count(m.get('retrying', 0))} retrying now",
                                 "warn" if m.get("retrying") else None)
        dead = m.get("dead", 0)
        self.tiles["dead"].set(fmt_count(dead), "need a replay" if dead else "none", "error" if dead else None)
        self.tiles["p95"].set(fmt_ms(latency.get("p95")), f"P50 {fmt_ms(latency.get('p50'))} · receipt → CRM")
        pending = m.get("pending", 0)
        self.tiles["queue"].set(fmt_count(m.get("queue_depth")), f"{fmt_count(pending)} calls waiting for the CRM")
        oldest = m.get("oldest_pending_age_seconds") or 0
        self.tiles["oldest"].set(fmt_age(oldest), "waiting longest" if oldest else "nothing waiting",
                                 "warn" if oldest >= 600 else None)

    def _show_events(self, snap: Snapshot) -> None:
        x = np.asarray(snap.minutes, dtype=float) + 30.0
        bottom = np.zeros(len(x))
        order = [o for o in OUTCOME_COLORS if o in snap.by_outcome and o != ""] + (
            [""] if "" in snap.by_outcome else []) + [o for o in snap.by_outcome if o not in OUTCOME_COLORS]
        for outcome in list(self._bars):
            if outcome not in snap.by_outcome:
                self.events_plot.removeItem(self._bars.pop(outcome))
        for outcome in order:
            heights = np.asarray(snap.by_outcome[outcome], dtype=float)
            bar = self._bars.get(outcome)
            if bar is None:
                color = OUTCOME_COLORS.get(outcome, "#78909c")
                bar = pg.BarGraphItem(x=x, height=heights, y0=bottom, width=54, brush=color, pen=pg.mkPen(None),
                                      name=OUTCOME_LABELS.get(outcome, outcome))
                self._bars[outcome] = bar
                self.events_plot.addItem(bar)
            else:
                bar.setOpts(x=x, height=heights, y0=bottom.copy(), width=54)
            bottom = bottom + heights
        if len(x):
            self.events_plot.setXRange(x[0] - 30, x[-1] + 30, padding=0)
            self.events_plot.setYRange(0, max(2.0, float(bottom.max()) * 1.4), padding=0)

    def _show_latency(self, snap: Snapshot) -> None:
        points = [p for p in snap.latency if p.get("p50") is not None]
        x = np.asarray([p["minute"] + 30 for p in points], dtype=float)
        self.p50.setData(x, np.asarray([p["p50"] for p in points], dtype=float))
        self.p95.setData(x, np.asarray([p["p95"] for p in points], dtype=float))
        if snap.minutes:
            self.latency_plot.setXRange(snap.minutes[0], snap.minutes[-1] + 60, padding=0)
        top = max((p["p95"] for p in points), default=0.0)
        self.latency_plot.setYRange(0, max(100.0, top * 1.3), padding=0)
