"""\"Start on login\": an XDG autostart entry on Linux (Desktop Entry Specification)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

_DESKTOP_RESERVED = re.compile(r'[\s"\'\\><~|&;$*?#()`]')


def _desktop_quote(arg: str) -> str:
    """Quote one argument of a desktop entry's ``Exec`` key (Desktop Entry Specification)."""
    if not arg or _DESKTOP_RESERVED.search(arg):
        escaped = re.sub(r'(["`$\\])', r"\\\1", arg)
        return f'"{escaped}"'
    return arg


def default_launch_command(data_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("callsync")
    found = str(script) if script.exists() else shutil.which("callsync")
    base = [found] if found else [sys.executable, "-m", "gui"]  # gui/launcher.py
    return [*base, "gui", "--data-dir", str(data_dir)]


def default_autostart_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "autostart" / "callsync.desktop"


class Autostart:
    """"Start on login": an XDG autostart entry on Linux; other systems are not supported yet."""

    def __init__(self, command: list[str], path: Path | None = None, platform: str | None = None) -> None:
        self.command = command
        self.path = path or default_autostart_path()
        self.platform = platform or sys.platform

    def supported(self) -> tuple[bool, str]:
        if self.platform.startswith("linux") or "bsd" in self.platform:
            return True, f"Starts callsync when you log in ({self.path})."
        name = {"darwin": "macOS", "win32": "Windows"}.get(self.platform, self.platform)
        return False, f"Start on login is not supported on {name} yet: add callsync to your login items yourself."

    def enabled(self) -> bool:
        return self.supported()[0] and self.path.exists()

    def desktop_entry(self) -> str:
        return (
            "[Desktop Entry]\n"
            "Type=Application\n"
            "Name=callsync\n"
            "Comment=Call events from your dialer into your CRM\n"
            f"Exec={' '.join(_desktop_quote(a) for a in self.command)}\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n"
        )

    def set(self, enabled: bool) -> None:
        ok, message = self.supported()
        if not ok:
            raise NotImplementedError(message)
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(self.desktop_entry(), encoding="utf-8")
        else:
            self.path.unlink(missing_ok=True)


