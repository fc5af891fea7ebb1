"""Export from the Calls and Events tabs (off the GUI thread, with progress and a real Cancel), the store
size on the dashboard, About with the version and the app icon, and the doctor's checks in the window."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QDateTime, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog

from connector.version import VERSION
from gui.dashboard import store_text
from gui.main import make_app
from gui.widgets import APP_ICON_PATH, fmt_bytes
from tests.gui.conftest import until
from tests.gui.test_calls_and_events import call
from tests.gui.test_dead_letters import DIALER, send

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
ANSWERED = {"answered_at": "2026-06-04T09:14:30Z", "ended_at": "2026-06-04T09:15:02Z", "duration_seconds": 32,
            "hangup_cause": "normal_clearing"}


@pytest.fixture(autouse=True)
def close_dialogs():
    """Dialogs a test leaves open (result messages, About) would look like other tests' dialogs."""
    yield
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QDialog) and widget.isVisible():
            widget.close()


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix == ".csv":
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f]


def stored(service, sql: str) -> list[tuple]:
    with sqlite3.connect(service.config.db_path) as conn:
        return conn.execute(sql).fetchall()


async def traffic(service) -> dict[str, str]:
    """Three calls through the real receiver: two answered (two events each), one still ringing."""
    ids = {}
    for phone in ("+12025550301", "+12025550302"):
        call_id, body = call(phone, "call.initiated")
        await send(service, body)
        body = json.dumps({**json.loads(call(phone)[1]), "call_uuid": call_id, **ANSWERED}).encode()
        await send(service, body)
        ids[phone] = call_id
    ids["+12025550303"], body = call("+12025550303", "call.initiated")
    await send(service, body)
    return ids


async def export_through_dialog(qtbot, view, path: Path, fmt: str = "csv", custom: tuple | None = None):
    """Click Export…, fill in the dialog as a user would, click Export; returns the exporter."""
    qtbot.mouseClick(view.export_button, LEFT)
    dialog = view.exporter.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.format.setCurrentIndex(dialog.format.findData(fmt))
    dialog.path.setText(str(path))
    if custom:
        dialog.range.setCurrentIndex(dialog.range.findData("custom"))
        dialog.since.setDateTime(QDateTime.fromSecsSinceEpoch(int(custom[0])))
        dialog.until.setDateTime(QDateTime.fromSecsSinceEpoch(int(custom[1])))
    qtbot.mouseClick(dialog.export_button, LEFT)
    return view.exporter


async def test_export_events_with_the_tabs_filters_and_progress_to_the_total(qtbot, start_service, open_window,
                                                                             tmp_path):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service)
    await traffic(service)
    window.select_tab("events")
    events = window.events
    await until(lambda: len(events.model.rows) == 5, what="five events listed")

    # Outcome filter "connected": only the two final events of the answered calls.
    events.outcome.setCurrentIndex(events.outcome.findData("connected"))
    events.outcome.activated.emit(events.outcome.currentIndex())
    await until(lambda: len(events.model.rows) == 2, what="filtered to two events")
    out = tmp_path / "connected.jsonl"
    exporter = await export_through_dialog(qtbot, events, out, "jsonl")
    assert "outcome connected" in exporter.dialog.scope_note.text()
    await until(lambda: exporter.outcome is not None, what="export finished")
    rows = read(out)
    expected = stored(service, "SELECT id, call_id FROM events WHERE outcome = 'connected' ORDER BY id")
    assert [(r["id"], r["call_id"]) for r in rows] == expected and len(expected) == 2
    assert all(json.loads(r["body"])["hangup_cause"] == "normal_clearing" for r in rows)
    assert exporter.last_progress == (2, 2)
    assert exporter.progress.maximum() == exporter.progress.value() == 2
    assert exporter.result_box.isVisible() and exporter.result_box.text() == f"Exported 2 events to {out}"
    assert not list(tmp_path.glob("*.part"))

    # No filter, a time range: everything of the last 24 hours, nothing of a day a week ago.
    events.outcome.setCurrentIndex(0)
    exporter.result_box.close()
    out = tmp_path / "all.csv"
    await export_through_dialog(qtbot, events, out, "csv")
    assert exporter.dialog.scope_note.text() == "All events in the time range."
    await until(lambda: exporter.outcome is not None and exporter.outcome.rows == 5, what="all events exported")
    assert sorted(int(r["id"]) for r in read(out)) == [i for (i,) in stored(service, "SELECT id FROM events")]
    week_ago = service.clock() - 7 * 86400
    out = tmp_path / "old.csv"
    exporter.outcome = None
    await export_through_dialog(qtbot, events, out, "csv", custom=(week_ago - 3600, week_ago))
    await until(lambda: exporter.outcome is not None, what="empty export finished")
    assert read(out) == [] and exporter.result_box.text() == f"Exported 0 events to {out}"


async def test_export_calls_with_the_search_and_a_readable_error(qtbot, start_service, open_window, tmp_path):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service)
    ids = await traffic(service)
    window.select_tab("calls")
    calls = window.calls
    await until(lambda: len(calls.model.rows) == 3, what="three calls listed")

    calls.search.setText("(202) 555-0302")
    qtbot.mouseClick(calls.go, LEFT)
    await until(lambda: len(calls.model.rows) == 1, what="phone search")
    out = tmp_path / "one-call.csv"
    exporter = await export_through_dialog(qtbot, calls, out)
    assert "phone number (202) 555-0302" in exporter.dialog.scope_note.text()
    await until(lambda: exporter.outcome is not None, what="export finished")
    rows = read(out)
    assert [(r["call_id"], r["phone"], r["outcome"]) for r in rows] == [(ids["+12025550302"], "+12025550302",
                                                                         "connected")]
    assert exporter.result_box.text() == f"Exported 1 call to {out}" and exporter.last_progress == (1, 1)

    calls.search.clear()
    qtbot.mouseClick(calls.go, LEFT)
    await until(lambda: len(calls.model.rows) == 3, what="all calls again")
    out = tmp_path / "calls.jsonl"
    exporter.outcome = None
    await export_through_dialog(qtbot, calls, out, "jsonl")
    await until(lambda: exporter.outcome is not None, what="export finished")
    assert {r["call_id"] for r in read(out)} == set(ids.values())
    assert exporter.result_box.text() == f"Exported 3 calls to {out}"

    # A folder that does not exist: said in the dialog, nothing runs.
    exporter.outcome = None
    missing = tmp_path / "no-such-folder" / "calls.csv"
    await export_through_dialog(qtbot, calls, missing)
    dialog = exporter.dialog
    assert dialog.isVisible() and dialog.error.isVisible()
    assert dialog.error.text() == f"The folder {missing.parent} does not exist."
    assert exporter.outcome is None and not exporter.running
    dialog.reject()


async def test_cancel_stops_the_export_and_leaves_no_file(qtbot, start_service, open_window, tmp_path):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service)
    await traffic(service)
    window.select_tab("events")
    await until(lambda: len(window.events.model.rows) == 5, what="events listed")
    out = tmp_path / "events.csv"
    # The export writes to events.csv.part first. A named pipe there holds the export's thread at the
    # start until the test opens the other end: Cancel is pressed while the export is surely running.
    part = tmp_path / "events.csv.part"
    os.mkfifo(part)
    exporter = await export_through_dialog(qtbot, window.events, out)
    await until(lambda: exporter.running and exporter.progress is not None and exporter.progress.isVisible(),
                what="progress dialog")
    cancel = next(b for b in exporter.progress.findChildren(type(window.events.go)) if b.text() == "Cancel")
    qtbot.mouseClick(cancel, LEFT)
    reader = os.open(part, os.O_RDONLY | os.O_NONBLOCK)  # lets the export go on: it stops at the next row
    try:
        await until(lambda: exporter.outcome is not None, what="export ended")
    finally:
        os.close(reader)
    assert exporter.outcome.cancelled and not exporter.outcome.ok
    assert exporter.outcome.rows == 0 and exporter.last_progress == (0, 5)
    assert not out.exists() and not part.exists()
    assert exporter.result_box.text() == "Export cancelled after 0 events: no file was written."
    assert not window.events.exporter.running


async def test_dashboard_shows_the_store_size_and_retention(start_service, open_window):
    service = await start_service(sources=DIALER, crm=False, token=None,
                                  extra={"retention": {"raw_payload_days": 7}})
    window = open_window(service)
    await traffic(service)
    label = window.dashboard.store
    await until(lambda: window.last_snapshot is not None and window.last_snapshot.metrics.get("received") == 5,
                what="traffic on the dashboard")
    await until(lambda: label.text() == store_text(window.last_snapshot.metrics), what="store line")
    size = window.last_snapshot.metrics["store_bytes"]
    on_disk = sum(os.path.getsize(p) for p in (f"{service.config.db_path}", f"{service.config.db_path}-wal")
                  if os.path.exists(p))
    assert size > 0 and abs(size - on_disk) <= on_disk  # the file's own size, not a made-up number
    assert label.text() == f"Store: {fmt_bytes(size)} · raw payloads kept 7 days"
    assert label.isVisible()


@pytest.mark.parametrize(("metrics", "text"), [
    ({"store_bytes": 1288490189, "retention": {"raw_payload_days": 30, "dropped": 0}},
     "Store: 1.2 GB · raw payloads kept 30 days"),
    ({"store_bytes": 356515840, "retention": {"raw_payload_days": 1, "dropped": 2500}},
     "Store: 340 MB · raw payloads kept 1 day · 2,500 older ones dropped since start"),
    ({"store_bytes": 12288, "retention": {"raw_payload_days": 0}}, "Store: 12 KB · raw payloads kept for ever"),
    ({"store_bytes": 0}, "Store: —"),
    ({}, "Store: —"),
])
def test_store_text(metrics, text):
    assert store_text(metrics) == text


@pytest.mark.parametrize(("value", "text"), [
    (None, "—"), (0, "0 B"), (512, "512 B"), (1536, "1.5 KB"), (10 * 1024, "10 KB"), (5 * 1024**3, "5.0 GB"),
    (3 * 1024**4, "3.0 TB"),
])
def test_fmt_bytes(value, text):
    assert fmt_bytes(value) == text


def pixel(icon: QIcon, x: int, y: int) -> str:
    return icon.pixmap(64, 64).toImage().pixelColor(x, y).name()


async def test_about_shows_version_paths_and_icon_and_runs_the_checks(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service, tray=True)
    await until(lambda: window.last_snapshot is not None, what="first snapshot")
    window.about_action.trigger()
    about = window.about_dialog
    assert about is not None and about.isVisible()
    assert about.version.text() == f"callsync {VERSION}"
    assert about.values["Data folder"].text() == str(service.config.data_dir)
    assert about.values["Store"].text().startswith(str(service.config.db_path))
    assert about.values["Settings"].text() == str(service.config.config_path)
    app = QIcon(str(APP_ICON_PATH))
    assert not app.isNull() and pixel(about.windowIcon(), 8, 32) == pixel(app, 8, 32)

    # The window and the tray show the app icon (with a health dot in the corner), the app sets it too.
    assert pixel(window.windowIcon(), 8, 32) == pixel(app, 8, 32)
    assert pixel(window.tray.icon.icon(), 8, 32) == pixel(app, 8, 32)
    assert pixel(make_app().windowIcon(), 8, 32) == pixel(app, 8, 32)
    about.close()
    window.tray.about.trigger()  # also from the tray menu
    assert window.about_dialog.isVisible()

    qtbot.mouseClick(window.about_dialog.checks_button, LEFT)
    checks = window.about_dialog.checks
    await until(lambda: checks.items is not None, timeout=30, what="checks finished")
    names = [checks.table.item(r, 1).text() for r in range(checks.table.rowCount())]
    assert {"keyring", "data dir", "store", "public URL", "CRM"} <= set(names)
    crm = names.index("CRM")
    assert checks.table.item(crm, 0).text() == "note"  # not configured: a note with the fix
    assert "location_id" in checks.table.item(crm, 3).text()
    store = names.index("store")
    assert checks.table.item(store, 0).text() == "ok" and "quick_check" in checks.table.item(store, 2).text()
    passed = sum(1 for item in checks.items if item.ok)
    assert checks.summary.text().startswith(f"{passed} of {len(checks.items)} checks passed")
    window.about_dialog.close()
    checks.close()
