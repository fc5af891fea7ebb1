"""Dashboard: health verdict, rejected-webhook alerts, counters and the two live charts."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from connector.facade import Snapshot
from gui.widgets import (
    LEVEL_COLORS,
    OUTCOME_COLORS,
    OUTCOME_LABELS,
    Banner,
    Tile,
    fmt_age,
    fmt_bytes,
    fmt_count,
    fmt_ms,
    hint,
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
MIN_SPAN = 15 * 60  # the narrowest time axis: a few minutes of data still read as minutes
NO_DATA = "no data yet"


def store_text(metrics: dict) -> str:
    """The store's size and how long raw payloads are kept, e.g. ``Store: 1.2 GB · raw payloads kept 30 days``."""
    size = metrics.get("store_bytes")
    text = f"Store: {fmt_bytes(size) if size else '—'}"
    retention = metrics.get("retention")
    if not isinstance(retention, dict):
        return text
    days = retention.get("raw_payload_days") or 0
    text += f" · raw payloads kept {days} day{'s' if days != 1 else ''}" if days > 0 else " · raw payloads kept for ever"
    dropped = retention.get("dropped") or 0
    return text + (f" · {dropped:,} older ones dropped since start" if dropped else "")


def outcome_order(outcomes) -> list[str]:  # noqa: ANN001 - any iterable of outcome names
    """Stacking and legend order: the known outcomes in their fixed order, then in progress, then others."""
    present = set(outcomes)
    known = [o for o in OUTCOME_COLORS if o in present and o != ""]
    return known + ([""] if "" in present else []) + sorted(present - set(OUTCOME_COLORS))


def time_range(snap: Snapshot) -> tuple[float, float]:
    """The x range of both charts: the chart window, narrowed to the data when there is little of it
    (never narrower than MIN_SPAN, never starting after the first point)."""
    end = float(snap.minutes[-1] + 60) if snap.minutes else snap.taken_at
    start = float(snap.minutes[0]) if snap.minutes else end - MIN_SPAN
    firsts = [next((m for m, v in zip(snap.minutes, series) if v), end) for series in snap.by_outcome.values()]
    firsts += [p["minute"] for p in snap.latency]
    first = min(firsts, default=end)
    return max(start, min(float(first), end - MIN_SPAN)), end


def _plot(title: str, left: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
    plot.setTitle(title, size="10pt", color="#37474f")
    plot.setLabel("left", left)
    plot.showGrid(x=False, y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(200)
    empty = pg.TextItem(NO_DATA, color="#90a4ae", anchor=(0.5, 0.5))
    plot.addItem(empty, ignoreBounds=True)
    plot.empty_text = empty  # type: ignore[attr-defined]
    return plot


class ChartLegend(QLabel):
    """Colour and name of each series, below its chart: never over the data, always in the same order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setStyleSheet("color: #37474f; font-size: 8pt;")
        self.entries: list[str] = []

    def set_entries(self, entries: list[tuple[str, str]]) -> None:
        """``(label, colour)`` pairs, shown in the given order."""
        if [label for label, _ in entries] == self.entries:
            return
        self.entries = [label for label, _ in entries]
        self.setText("&nbsp;&nbsp; ".join(
            f'<span style="color: {color};">&#9632;</span>&nbsp;{html.escape(label)}' for label, color in entries))


def _show_empty(plot: pg.PlotWidget, empty: bool, x: tuple[float, float], y: tuple[float, float]) -> None:
    text: pg.TextItem = plot.empty_text  # type: ignore[attr-defined]
    text.setVisible(empty)
    if empty:
        text.setPos((x[0] + x[1]) / 2, (y[0] + y[1]) / 2)


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

        self.tunnel = QLabel("")  # the public URL: where senders on the internet reach this machine
        self.tunnel.setWordWrap(True)
        self.tunnel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tunnel_notice = Banner()  # the public URL changed since the last run
        self.tunnel_notice.action.connect(lambda: self.open_tab.emit("sources"))
        self.tunnel_notice.hide()
        self.gap_notice = Banner()  # callsync was off: when, and what was filled in from the provider's call log
        self.gap_notice.hide()
        self.alerts = Banner()  # sources whose requests fail the signature check
        self.alerts.action.connect(lambda: self.open_tab.emit("sources"))
        self.alerts.hide()

        self.events_plot = _plot("Events per minute by outcome", "events")
        self.events_legend = ChartLegend()
        self.latency_plot = _plot("Receipt → CRM latency per minute", "ms")
        self.latency_legend = ChartLegend()
        self.latency_legend.set_entries([("P95", "#e53935"), ("P50", "#1e88e5")])
        self.p95 = self.latency_plot.plot([], [], pen=pg.mkPen("#e53935", width=2),
                                          symbol="o", symbolSize=4, symbolBrush="#e53935", symbolPen=None)
        self.p50 = self.latency_plot.plot([], [], pen=pg.mkPen("#1e88e5", width=1.5),
                                          symbol="o", symbolSize=3, symbolBrush="#1e88e5", symbolPen=None)
        self.store = hint("Store: —")
        self.store.setToolTip("The size of the store on disk (database and write-ahead log). Older raw payloads "
                              "are dropped as [retention] raw_payload_days says; calls and events stay.")
        self._bars: dict[str, pg.BarGraphItem] = {}
        self._shown: Snapshot | None = None

        charts = QHBoxLayout()
        for plot, legend in ((self.events_plot, self.events_legend), (self.latency_plot, self.latency_legend)):
            column = QVBoxLayout()
            column.setSpacing(2)
            column.addWidget(plot, 1)
            column.addWidget(legend)
            charts.addLayout(column, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.health)
        layout.addWidget(self.tunnel)
        layout.addWidget(self.tunnel_notice)
        layout.addWidget(self.gap_notice)
        layout.addWidget(self.alerts)
        layout.addLayout(grid)
        layout.addLayout(charts, 1)
        layout.addWidget(self.store)

    # -- rendering ------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot) -> None:
        if snap is self._shown:
            return
        self._shown = snap
        self._target = snap.target
        self.health.set_message(snap.level, snap.verdict, TARGET_BUTTONS.get(snap.target or ""))
        self.alerts.setVisible(bool(snap.alerts))
        if snap.alerts:
            self.alerts.set_message("error", "\n".join(snap.alerts), "Open Sources")
        self._show_tunnel(snap.tunnel)
        self.gap_notice.setVisible(bool(snap.gap_notice))
        if snap.gap_notice:
            self.gap_notice.set_message("warn", snap.gap_notice + ".")
        self._show_tiles(snap.metrics)
        self.store.setText(store_text(snap.metrics))
        x_range = time_range(snap)
        self._show_events(snap, x_range)
        self._show_latency(snap, x_range)

    def _show_tunnel(self, view) -> None:  # noqa: ANN001 - connector.tunnel.controls.TunnelView or None
        if view is None:
            return
        level = {"up": "ok", "error": "error", "connecting": "info"}.get(view.state) if view.enabled else None
        self.tunnel.setText(view.headline)
        self.tunnel.setStyleSheet(f"color: {LEVEL_COLORS[level]};" if level else "color: #546e7a;")
        self.tunnel_notice.setVisible(bool(view.notice))
        if view.notice:
            self.tunnel_notice.set_message("warn", view.notice, "Open Sources")

    def _show_tiles(self, m: dict) -> None:
        latency = m.get("sync_latency_ms") or {}
        rejected = m.get("rejected_total", 0)
        self.tiles["received"].set(fmt_count(m.get("received")),
                                   f"{fmt_count(m.get('stored'))} stored · {fmt_count(rejected)} rejected",
                                   "warn" if rejected and not m.get("stored") else None)
        self.tiles["processed"].set(fmt_count(m.get("processed")), "calls written to the CRM")
        self.tiles["deduped"].set(fmt_count(m.get("deduped")), "repeats ignored")
        failed = m.get("failed_calls", 0)
        self.tiles["failed"].set(fmt_count(failed), f"calls · {fmt_count(m.get('failed', 0))} tries failed · "
                                 f"{fmt_count(m.get('retrying', 0))} retrying", "warn" if m.get("retrying") else None)
        dead = m.get("dead", 0)
        self.tiles["dead"].set(fmt_count(dead), "need a replay" if dead else "none", "error" if dead else None)
        self.tiles["p95"].set(fmt_ms(latency.get("p95")), f"P50 {fmt_ms(latency.get('p50'))} · receipt → CRM")
        pending = m.get("pending", 0)
        self.tiles["queue"].set(fmt_count(m.get("queue_depth")),
                                f"{fmt_count(pending)} {'call' if pending == 1 else 'calls'} waiting for the CRM")
        oldest = m.get("oldest_pending_age_seconds") or 0
        self.tiles["oldest"].set(fmt_age(oldest), "waiting longest" if oldest else "nothing waiting",
                                 "warn" if oldest >= 600 else None)

    def _show_events(self, snap: Snapshot, x_range: tuple[float, float]) -> None:
        x = np.asarray(snap.minutes, dtype=float) + 30.0
        bottom = np.zeros(len(x))
        order = outcome_order(snap.by_outcome)
        self.events_legend.set_entries([(OUTCOME_LABELS.get(o, o), OUTCOME_COLORS.get(o, "#78909c")) for o in order])
        for outcome in list(self._bars):
            if outcome not in snap.by_outcome:
                self.events_plot.removeItem(self._bars.pop(outcome))
        for outcome in order:
            heights = np.asarray(snap.by_outcome[outcome], dtype=float)
            bar = self._bars.get(outcome)
            if bar is None:
                color = OUTCOME_COLORS.get(outcome, "#78909c")
                bar = pg.BarGraphItem(x=x, height=heights, y0=bottom, width=54, brush=color, pen=pg.mkPen(None))
                self._bars[outcome] = bar
                self.events_plot.addItem(bar)
            else:
                bar.setOpts(x=x, height=heights, y0=bottom.copy(), width=54)
            bottom = bottom + heights
        y_range = (0.0, max(2.0, float(bottom.max()) * 1.15) if len(x) else 2.0)
        self.events_plot.setXRange(*x_range, padding=0)
        self.events_plot.setYRange(*y_range, padding=0)
        _show_empty(self.events_plot, not bottom.any(), x_range, y_range)

    def _show_latency(self, snap: Snapshot, x_range: tuple[float, float]) -> None:
        points = [p for p in snap.latency if p.get("p50") is not None]
        x = np.asarray([p["minute"] + 30 for p in points], dtype=float)
        self.p50.setData(x, np.asarray([p["p50"] for p in points], dtype=float))
        self.p95.setData(x, np.asarray([p["p95"] for p in points], dtype=float))
        top = max((p["p95"] for p in points), default=0.0)
        y_range = (0.0, max(100.0, top * 1.15))
        self.latency_plot.setXRange(*x_range, padding=0)
        self.latency_plot.setYRange(*y_range, padding=0)
        _show_empty(self.latency_plot, not points, x_range, y_range)
