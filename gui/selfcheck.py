"""The self-test's window check: the Qt platform plugin loads (offscreen, so it runs without a display) and
every module the window is built from imports, charts included (a frozen build that left out a Qt module
the charts need fails here, not when a user opens the window)."""

from __future__ import annotations

import os

from connector.selftest import Check


def qt_platform_check() -> Check:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["callsync-self-test"])
    import pyqtgraph as pg

    import gui.main  # noqa: F401 - the window and every tab it opens
    import gui.window  # noqa: F401

    chart = pg.PlotWidget()
    chart.plot([0, 1, 2], [1, 3, 2])
    chart.deleteLater()
    name = app.platformName()
    return Check("window toolkit", bool(name), f"Qt platform plugin {name!r} loaded; the window and its charts load")
