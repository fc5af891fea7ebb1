"""The self-test's window check: the Qt platform plugin loads (offscreen, so it runs without a display)."""

from __future__ import annotations

import os

from connector.selftest import Check


def qt_platform_check() -> Check:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(["callsync-self-test"])
    name = app.platformName()
    return Check("window toolkit", bool(name), f"Qt platform plugin {name!r} loaded")
