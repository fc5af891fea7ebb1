"""Dead letters tab against the spec-validating fake GoHighLevel: replay selected / all, discard."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from tests.conftest import SECRET
from tests.fakes.ghl_server import Fault
from tests.gui.conftest import until
from tests.signing import dumps, hmac_headers

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
DIALER = {"dialer": {"kind": "hmac"}}


def completed_call(phone: str) -> bytes:
    return dumps({
        "event": "call.completed", "call_uuid": str(uuid.uuid4()), "from": "+12025550000", "to": phone,
        "direction": "outbound", "initiated_at": "2026-06-04T09:14:22Z", "answered_at": "2026-06-04T09:14:29Z",
        "ended_at": "2026-06-04T09:17:45Z", "duration_seconds": 196, "hangup_cause": "normal_clearing",
    })


async def send(service, body: bytes) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/dialer", data=body, headers=hmac_headers(body, SECRET)) as r:
            assert r.status == 200, await r.text()


async def make_dead(service, ghl, phones: list[str]) -> None:
    for phone in phones:
        ghl.inject("note", Fault.status(422, {"message": "Note body is invalid", "statusCode": 422}))
        await send(service, completed_call(phone))
        await until(lambda: ghl.pending_faults == 0, what="fault consumed")
    deadline = time.monotonic() + 15
    while True:  # poll the store's own numbers until the deadline
        metrics = await service.metrics()
        if metrics["dead"] == len(phones) and metrics["pending"] == 0:
            return
        assert time.monotonic() < deadline, f"expected {len(phones)} dead letters: {metrics}"
        await asyncio.sleep(0.02)


def select_rows(view, rows: list[int]) -> None:
    selection = view.table.selectionModel()
    selection.clearSelection()
    for row in rows:
        selection.select(view.model.index(row, 0),
                         QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


async def test_replay_selected_dead_letter_reaches_the_crm(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    await make_dead(service, ghl, ["+12025550111"])
    window = open_window(service)
    await until(lambda: window.dashboard.tiles["dead"].value.text() == "1", what="dead tile = 1")
    assert window.dashboard.health.text.text() == "1 call failed to sync — open Dead letters"
    assert window.dashboard.health.level == "error"
    qtbot.mouseClick(window.dashboard.health.button, LEFT)  # "Open Dead letters"
    view = window.dead_letters
    assert window.tabs.currentWidget() is view
    await until(lambda: len(view.model.rows) == 1, what="dead letter listed")
    row = view.model.rows[0]
    assert "422" in row["last_error"] and row["phone"] == "+12025550111"
    assert not view.replay_selected.isEnabled()

    select_rows(view, [0])
    assert view.replay_selected.isEnabled()
    qtbot.mouseClick(view.replay_selected, LEFT)
    await until(lambda: view.status.text().startswith("Replayed 1: 1 synced"), what="replay finished")
    assert view.model.rows == []
    contact = ghl.contact_by_phone("+12025550111")
    notes = ghl.notes[contact["id"]]
    assert len(notes) == 1  # the rejected note is posted once, not twice
    assert "call connected" in contact["tags"]
    await until(lambda: window.dashboard.tiles["dead"].value.text() == "0", what="dead tile back to 0")
    await until(lambda: window.dashboard.health.text.text() == "All synced", what="verdict All synced")


async def test_replay_all_shows_progress_and_discard_needs_confirmation(qtbot, start_service, open_window, ghl):
    service = await start_service(sources=DIALER)
    await make_dead(service, ghl, ["+12025550121", "+12025550122", "+12025550123"])
    window = open_window(service)
    window.select_tab("dead_letters")
    view = window.dead_letters
    await until(lambda: len(view.model.rows) == 3, what="3 dead letters")

    select_rows(view, [0])
    qtbot.mouseClick(view.discard_selected, LEFT)
    assert view.confirm.isVisible() and "Discard 1 dead letter" in view.confirm.text.text()
    qtbot.mouseClick(view.confirm.no, LEFT)
    assert len(view.model.rows) == 3
    qtbot.mouseClick(view.discard_selected, LEFT)
    discarded_phone = view.model.rows[0]["phone"]
    qtbot.mouseClick(view.confirm.yes, LEFT)
    await until(lambda: len(view.model.rows) == 2, what="one discarded")
    assert "Discarded 1" in view.status.text()

    seen_progress = []
    view.progress.valueChanged.connect(seen_progress.append)
    qtbot.mouseClick(view.replay_all, LEFT)
    await until(lambda: view.status.text().startswith("Replayed 2: 2 synced"), what="replay all finished")
    assert seen_progress and max(seen_progress) == 2 and view.progress.maximum() == 2
    assert view.model.rows == [] and not view.progress.isVisible()
    synced = {p for p in ("+12025550121", "+12025550122", "+12025550123") if ghl.contact_by_phone(p)
              and ghl.notes.get(ghl.contact_by_phone(p)["id"])}
    assert synced == {"+12025550121", "+12025550122", "+12025550123"} - {discarded_phone}
