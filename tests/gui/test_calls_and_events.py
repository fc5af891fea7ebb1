"""Calls and Events: outcome names never cut off, local readable times, a search box on Calls, and a
delivery log that says why a job waits and when it is tried next."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
from PySide6.QtCore import Qt

from tests.fakes.ghl_server import Fault
from tests.gui.conftest import crm_table, until
from tests.gui.test_dead_letters import DIALER, send
from tests.signing import dumps

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
CELL_PADDING = 12  # the cell's margins and focus frame


def call(phone: str, event: str = "call.completed", **extra) -> tuple[str, bytes]:
    call_id = str(uuid.uuid4())
    return call_id, dumps({"event": event, "call_uuid": call_id, "from": "+12025550000", "to": phone,
                           "direction": "outbound", "initiated_at": "2026-06-04T09:14:22Z", **extra})


def shown_in_full(table, row: int, column: int) -> bool:
    text = table.model().data(table.model().index(row, column))
    room = table.columnWidth(column) - CELL_PADDING
    return table.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, room) == text


async def test_outcomes_in_full_local_times_and_search_on_calls(qtbot, start_service, open_window):
    service = await start_service(sources=DIALER)
    window = open_window(service)
    ids = {}
    ids["ringing"], body = call("+12025550211", "call.initiated")
    await send(service, body)
    ids["no answer"], body = call("+12025550212", ended_at="2026-06-04T09:15:02Z", duration_seconds=0,
                                  hangup_cause="no_answer")
    await send(service, body)
    ids["voicemail"], body = call("+12025550213", "call.voicemail.detected", answered_at="2026-06-04T09:14:30Z")
    await send(service, body)

    window.select_tab("calls")
    calls = window.calls
    await until(lambda: len(calls.model.rows) == 3, what="three calls")
    outcome_column = [h for h, _ in calls.model.columns].index("Outcome")
    shown = {calls.model.rows[r]["call_id"]: calls.model.data(calls.model.index(r, outcome_column))
             for r in range(3)}
    assert shown == {ids["ringing"]: "in progress", ids["no answer"]: "no answer", ids["voicemail"]: "voicemail"}
    for row in range(3):
        for column in range(len(calls.model.columns)):
            if calls.model.columns[column][1] not in ("call_id", "phone"):
                assert shown_in_full(calls.table, row, column), calls.model.columns[column]

    # The lifecycle shows the payload's UTC times as local, readable times.
    row = next(r for r, c in enumerate(calls.model.rows) if c["call_id"] == ids["no answer"])
    calls.table.selectRow(row)
    initiated = calls.inspector.values["Initiated"]
    await until(lambda: initiated.text() != "", what="lifecycle shown")
    local = datetime(2026, 6, 4, 9, 14, 22, tzinfo=timezone.utc).astimezone()
    assert initiated.text() in (local.strftime("%H:%M:%S"), f"{local.day} {local.strftime('%b %H:%M')}",
                                f"{local.day} {local.strftime('%b %Y %H:%M')}")
    assert "T" not in initiated.text() and "Z" not in initiated.text()

    # Search by phone (as people type it) and by call id.
    qtbot.keyClicks(calls.search, "(202) 555-0212")
    qtbot.mouseClick(calls.go, LEFT)
    await until(lambda: [c["call_id"] for c in calls.model.rows] == [ids["no answer"]], what="phone search")
    assert "for this phone number" in calls.status.text()
    calls.search.setText(ids["voicemail"])
    calls.search.returnPressed.emit()
    await until(lambda: [c["call_id"] for c in calls.model.rows] == [ids["voicemail"]], what="call id search")
    calls.search.clear()
    qtbot.mouseClick(calls.go, LEFT)
    await until(lambda: len(calls.model.rows) == 3, what="all calls again")

    window.select_tab("events")
    events = window.events
    await until(lambda: len(events.model.rows) == 3, what="three events")
    for row in range(3):
        for column in (0, 3, 5):  # time, type, outcome
            assert shown_in_full(events.table, row, column)


async def test_delivery_log_says_crm_not_configured_and_when_it_is_tried_next(start_service, open_window):
    service = await start_service(sources=DIALER, crm=False, token=None)
    window = open_window(service)
    call_id, body = call("+12025550221", ended_at="2026-06-04T09:15:02Z", hangup_cause="normal_clearing",
                         answered_at="2026-06-04T09:14:30Z", duration_seconds=32)
    await send(service, body)
    window.select_tab("events")
    events = window.events
    await until(lambda: len(events.model.rows) == 1, what="event listed")
    events.table.selectRow(0)
    job = events.inspector.job
    await until(lambda: job.text().startswith("CRM job #"), what="job summary")
    assert job.text().endswith(": waiting — CRM not configured; next try once that is fixed.")


async def test_delivery_log_says_why_a_job_retries_and_at_what_time(start_service, open_window, ghl):
    crm = crm_table(ghl)
    crm["crm"]["ghl"]["retry_schedule"] = [600]
    service = await start_service(sources=DIALER, extra=crm)
    window = open_window(service)
    ghl.inject("note", Fault.status(500, {"message": "upstream hiccup", "statusCode": 500}))
    call_id, body = call("+12025550222", ended_at="2026-06-04T09:15:02Z", hangup_cause="normal_clearing",
                         answered_at="2026-06-04T09:14:30Z", duration_seconds=32)
    await send(service, body)
    await until(lambda: ghl.pending_faults == 0, what="the note failed")
    window.select_tab("calls")
    calls = window.calls
    job = calls.inspector.job

    async def retrying() -> bool:
        detail = await window.facade.call_detail("dialer", call_id)
        return bool(detail and detail["job"] and detail["job"]["failures"] == 1
                    and detail["job"]["status"] == "pending")

    deadline = time.monotonic() + 10
    while not await retrying():
        assert time.monotonic() < deadline, "the job did not go back to waiting"
        await until(lambda: True)
    await calls.reload()
    calls.table.selectRow(0)
    await until(lambda: "retrying after an error" in job.text(), what="retry reason")
    stored = (await window.facade.call_detail("dialer", call_id))["job"]
    assert "upstream hiccup" in stored["last_error"]
    assert f": waiting — retrying after an error: {stored['last_error']}; next try at " in job.text()
    assert f"next try at {datetime.fromtimestamp(stored['next_attempt_at']).strftime('%H:%M:%S')} (in " in job.text()
