"""GUI tests run their async code on a qasync loop: the window, the receiver, the worker and the
fake GoHighLevel share one Qt event loop, as in the app."""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

import qasync  # after PySide6

from connector import secrets
from connector.app import Service
from connector.autostart import Autostart
from connector.facade import Facade
from gui.tray import Tray
from gui.window import MainWindow, view_tasks
from tests.conftest import SECRET, make_config


_kept: list[MainWindow] = []  # windows of finished tests, hidden


def _qasync_loop() -> asyncio.AbstractEventLoop:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    return qasync.QEventLoop(app)


def pytest_asyncio_loop_factories(config, item):
    """Every async test and fixture under tests/gui runs on a qasync QEventLoop."""
    return {"qasync": _qasync_loop}


def pytest_collection_modifyitems(items):
    """Each async GUI test ends by stopping its windows' timers and letting the slots it started finish
    while its qasync loop still runs; pytest-qt processes Qt events after the test, and a slot resumed
    then would find no running loop."""
    here = Path(__file__).parent
    for item in items:
        function = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(function) and here in Path(str(item.fspath)).parents:
            item.obj = _settling(function)


def _settling(function):
    @functools.wraps(function)
    async def test(*args, **kwargs):
        try:
            return await function(*args, **kwargs)
        finally:
            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, MainWindow):
                    widget.stop()
            await asyncio.sleep(0.01)
            tasks = view_tasks()
            if tasks:
                await asyncio.wait(tasks, timeout=10)

    return test


async def until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Let the loop (Qt and asyncio) run until ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def crm_table(ghl, **extra) -> dict:
    return {"crm": {"ghl": {"location_id": ghl.location_id, "base_url": ghl.base_url,
                            "retry_schedule": [0.05, 0.1]} | extra}}


@pytest.fixture
async def start_service(tmp_path, memory_keyring, ghl):
    """``await start_service(sources=..., crm=True, token=...)`` -> a running Service in tmp_path."""
    services: list[Service] = []

    async def start(*, sources: dict | None = None, crm: bool = True, token: str | None = "fake",
                    extra: dict | None = None) -> Service:
        data = (crm_table(ghl) if crm else {}) | (extra or {})
        if token:
            secrets.set_secret("crm:ghl", ghl.token if token == "fake" else token)
        for name in sources or {}:
            secrets.set_secret(secrets.source_user(name), SECRET)
        config = make_config(tmp_path, sources=sources or {}, extra=data)
        config.config_path.write_text(_toml(config.raw), encoding="utf-8")
        service = Service(config)
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        await service.stop()


def _toml(data: dict) -> str:
    import tomlkit

    return "# written by the test\n" + tomlkit.dumps(data)


@pytest.fixture
async def open_window(qtbot, tmp_path):
    """``open_window(service, tray=False)`` -> a shown MainWindow refreshing every 100 ms."""
    windows: list[MainWindow] = []

    def open_(service: Service, *, tray: bool = False) -> MainWindow:
        autostart = Autostart(["callsync", "gui"], path=tmp_path / "autostart" / "callsync.desktop",
                              platform="linux")
        facade = Facade(service, autostart=autostart)
        icon = Tray() if tray else None
        window = MainWindow(facade, icon, refresh_ms=100)  # closed here, not by qtbot: it must stop first
        if icon is not None:
            icon.show()
        window.show()
        window.start()
        windows.append(window)
        return window

    yield open_
    for window in windows:
        await window.aclose()  # slots already on their way finish on this loop
        if window.tray is not None:
            window.tray.icon.hide()
        window.hide()
        _kept.append(window)  # deleting pyqtgraph-holding windows mid-session is not safe


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path
