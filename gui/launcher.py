"""The ``callsync`` command: the window (``callsync``, ``callsync gui``) or any headless command.

Everything but the window is :mod:`connector.cli` (headless; it imports nothing from ``gui``): this
module only hands it a :class:`QtWindow`, which imports Qt when the window really opens, when a
start-up error needs a dialog, or when ``--self-test`` checks the Qt platform plugin.  So ``callsync
serve`` and the tools never load Qt.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from connector import cli
from connector.config import Config
from connector.startup import StartupError


class QtWindow:
    """The window as :class:`connector.cli.Window`."""

    def possible(self) -> bool:
        """Whether a dialog can be shown: on X11/Wayland only with a display (Qt aborts without one)."""
        if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
            return True
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

    def run(self, config: Config) -> int:
        try:
            from gui.main import run_gui
        except ImportError as exc:  # an install missing part of Qt: one line, never a traceback
            raise StartupError(f"the window cannot be loaded ({exc}); `callsync serve` runs without it") from exc
        return run_gui(config)

    def show_error(self, exc: Exception) -> int:
        from gui.main import show_startup_error

        return show_startup_error(exc)  # the same line on stderr, and a dialog

    def self_checks(self) -> list[Callable[[], Any]]:
        from connector import selftest

        try:
            from gui.selfcheck import qt_platform_check
        except ImportError as exc:  # a server install without the window: say so, as a failed check
            reason = str(exc)

            def qt_missing() -> selftest.Check:
                return selftest.Check("window toolkit", False, f"cannot load the window: {reason}")

            return [qt_missing]
        return [qt_platform_check]


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, window=QtWindow())


if __name__ == "__main__":
    sys.exit(main())
